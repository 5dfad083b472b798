/**
 * Who is around, on the demo page: the members of the room on screen (`get_room_members`, kept
 * current by `user_status`) and how many people are online (`GET /stats`, every 10 s and when
 * someone comes or goes).
 */
import type { AleatoriaClient } from '../client/index.ts';
import { element } from './dom.ts';

const STATS_EVERY_MS = 10_000;

export interface Presence {
  /** Shows the members of `room` (none when `undefined`). */
  show(room: string | undefined): void;
  /** Asks again: after a reconnect, figures may have changed unseen. */
  refresh(): void;
}

/** `stats` next to `wsUrl` (the page's own, or the `?server=` one): `/stats`, or `/chat/stats`. */
function statsUrl(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = url.pathname.replace(/[^/]*$/, 'stats');
  url.search = '';
  return url.href;
}

export function createPresence(client: AleatoriaClient, wsUrl: string): Presence {
  const ui = {
    title: element('members-title', HTMLElement),
    members: element('room-members', HTMLElement),
    online: element('online-count', HTMLElement),
  };
  const stats = statsUrl(wsUrl);
  let room: string | undefined;
  /** Answers to older requests (another room, a superseded ask) are dropped. */
  let asked = 0;

  function render(members: string[], count: number): void {
    const items = members.map((member) => {
      const item = document.createElement('li');
      item.className = 'member';
      item.dataset.user = member;
      item.textContent = member === client.userId ? `${member} (you)` : member;
      return item;
    });
    if (count > members.length) {
      const more = document.createElement('li');
      more.className = 'member more';
      more.textContent = `and ${count - members.length} more`;
      items.push(more);
    }
    ui.members.replaceChildren(...items);
    ui.title.textContent = room ? `In ${room} (${count})` : 'In this room';
    ui.members.dataset.count = String(count);
  }

  function loadMembers(): void {
    const ask = ++asked;
    if (!room) {
      render([], 0);
      return;
    }
    client.getRoomMembers(room).then(
      (reply) => {
        if (ask === asked && reply.room === room) render(reply.members, reply.count);
      },
      () => {
        // Not connected or not answered: the next user_status, reconnect or tick asks again.
      },
    );
  }

  async function loadStats(): Promise<void> {
    try {
      const response = await fetch(stats, { cache: 'no-store' });
      if (!response.ok) return;
      const { online } = (await response.json()) as { online?: unknown };
      if (typeof online !== 'number') return;
      ui.online.textContent = `${online} online`;
      ui.online.dataset.count = String(online);
    } catch {
      // The server is unreachable: the connection status says so already.
    }
  }

  client.on('user_status', (message) => {
    if (message.room === room) loadMembers();
    void loadStats();
  });
  setInterval(() => {
    loadMembers();
    void loadStats();
  }, STATS_EVERY_MS);
  void loadStats();

  return {
    show(next) {
      if (next === room) return;
      room = next;
      loadMembers();
    },
    refresh() {
      loadMembers();
      void loadStats();
    },
  };
}
