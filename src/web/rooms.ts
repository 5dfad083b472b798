/**
 * The demo page's room panel: the rooms this connection is in, the chat of the selected one, and
 * joining, leaving and writing. Keeps the last lines of each room it has seen; each room's recent
 * messages are fetched once when the page first sees it (`loadHistory`), and the SDK catches up on
 * what a dropped connection missed.
 */
import type { AleatoriaClient } from '../client/index.ts';
import { appendToLog, chatLine, element } from './dom.ts';

const MAX_ROOM_LINES = 200;

export interface RoomsPanel {
  /** The rooms the server last listed for this connection. */
  joined(): string[];
  onMessage(room: string, from: string, text: string): void;
}

export interface RoomsPanelOptions {
  /** The room the server puts the connection in: its history is asked for before the socket opens. */
  initialRoom: string;
  showError(text: string): void;
  /** The room on screen changed. */
  onSelect(room: string | undefined): void;
}

export function createRoomsPanel(
  client: AleatoriaClient,
  { initialRoom, showError, onSelect }: RoomsPanelOptions,
): RoomsPanel {
  const ui = {
    rooms: element('rooms', HTMLElement),
    roomForm: element('room-form', HTMLFormElement),
    roomInput: element('room-input', HTMLInputElement),
    leaveRoom: element('leave-room', HTMLButtonElement),
    lobbyTitle: element('lobby-title', HTMLElement),
    lobbyLog: element('lobby-log', HTMLElement),
    lobbyForm: element('lobby-form', HTMLFormElement),
    lobbyInput: element('lobby-input', HTMLInputElement),
    lobbySend: element('lobby-send', HTMLButtonElement),
  };
  let joinedRooms: string[] = [];
  let selectedRoom: string | undefined;
  /** A room the user asked to join: selected when the server confirms it. */
  let roomToSelect: string | undefined;
  const roomLines = new Map<string, { from: string; text: string }[]>();
  /** Rooms whose recent messages were asked for (again after leaving them). */
  const seeded = new Set<string>();

  function seed(room: string): void {
    if (seeded.has(room)) return;
    seeded.add(room);
    client.loadHistory({ room }).catch(() => seeded.delete(room));
  }

  const roomLine = (from: string, text: string) => chatLine(from, from, text);

  function renderRooms(): void {
    const items = joinedRooms.map((room) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'room';
      button.dataset.room = room;
      button.textContent = room;
      button.setAttribute('aria-pressed', String(room === selectedRoom));
      button.addEventListener('click', () => selectRoom(room));
      item.append(button);
      return item;
    });
    ui.rooms.replaceChildren(...items);
  }

  function renderLobbyLog(): void {
    ui.lobbyTitle.textContent = selectedRoom ? `Chat in ${selectedRoom}` : 'Room chat';
    const lines = selectedRoom ? (roomLines.get(selectedRoom) ?? []) : [];
    ui.lobbyLog.replaceChildren(...lines.map((line) => roomLine(line.from, line.text)));
    ui.lobbyLog.scrollTop = ui.lobbyLog.scrollHeight;
    ui.lobbyInput.disabled = !selectedRoom;
    ui.lobbySend.disabled = !selectedRoom;
  }

  function selectRoom(room: string | undefined): void {
    selectedRoom = room;
    renderRooms();
    renderLobbyLog();
    onSelect(room);
  }

  client.on('rooms_list', (message) => {
    joinedRooms = message.payload.rooms;
    if (roomToSelect && joinedRooms.includes(roomToSelect)) {
      selectedRoom = roomToSelect;
      roomToSelect = undefined;
    }
    if (!selectedRoom || !joinedRooms.includes(selectedRoom)) selectedRoom = joinedRooms[0];
    for (const room of joinedRooms) seed(room);
    selectRoom(selectedRoom);
  });
  client.on('room_joined', (message) => {
    // At once: a live message of the room must not come before its history.
    seed(message.payload.room);
    client.getRooms();
  });
  client.on('room_left', (message) => {
    // Rejoining later shows the room's recent messages afresh.
    seeded.delete(message.payload.room);
    roomLines.delete(message.payload.room);
    client.getRooms();
  });

  ui.roomForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = ui.roomInput.value.trim();
    if (!room) return;
    roomToSelect = room;
    if (client.joinRoom(room)) ui.roomInput.value = '';
    else showError('Not connected to the server.');
  });

  ui.leaveRoom.addEventListener('click', () => {
    const room = ui.roomInput.value.trim() || selectedRoom;
    if (!room) return;
    if (client.leaveRoom(room)) ui.roomInput.value = '';
    else showError('Not connected to the server.');
  });

  ui.lobbyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.lobbyInput.value.trim();
    if (!text || !selectedRoom) return;
    if (client.sendRoomMessage(selectedRoom, text)) ui.lobbyInput.value = '';
    else showError('Not connected to the server: the message was not sent.');
  });

  seed(initialRoom);
  renderRooms();
  renderLobbyLog();
  return {
    joined: () => joinedRooms,
    onMessage(room, from, text) {
      let lines = roomLines.get(room);
      if (!lines) roomLines.set(room, (lines = []));
      lines.push({ from, text });
      if (lines.length > MAX_ROOM_LINES) lines.splice(0, lines.length - MAX_ROOM_LINES);
      if (room === selectedRoom) appendToLog(ui.lobbyLog, roomLine(from, text));
    },
  };
}
