/**
 * The demo page's text chat with the stranger: the log of the conversation with the current (or,
 * after a reload, the last) stranger, and the composer, usable while a call is on. The stranger's
 * id is kept in sessionStorage, so a reload fetches the conversation back (`loadHistory`).
 */
import type { AleatoriaClient, ChatMessage } from '../client/index.ts';
import { appendToLog, chatLine, element } from './dom.ts';
import { loadPartner, savePartner } from './session.ts';

export interface StrangerChat {
  /** Shows the conversation with `peerId` (a new call): the log starts empty. */
  start(peerId: string): void;
  /** Empties the log and forgets the stranger. */
  clear(): void;
  /** The composer is usable only while a call is on. */
  setEnabled(enabled: boolean): void;
  /** A direct chat message: shown when it belongs to the conversation on screen. */
  onMessage(message: ChatMessage): void;
  /**
   * After a reload: the stranger whose chat was on screen, its conversation fetched back into the
   * log; `undefined` when there was none.
   */
  restore(): string | undefined;
}

export function createStrangerChat(
  client: AleatoriaClient,
  showError: (text: string) => void,
): StrangerChat {
  const ui = {
    form: element('chat-form', HTMLFormElement),
    input: element('chat-input', HTMLInputElement),
    send: element('chat-send', HTMLButtonElement),
    log: element('chat-log', HTMLElement),
  };
  let partner: string | undefined;
  let enabled = false;

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text || !enabled || !partner) return;
    // Shown when the server echoes it back (incoming: false), so the log shows what was delivered.
    if (client.sendDirectMessage(partner, text)) ui.input.value = '';
    else showError('Not connected to the server: the message was not sent.');
  });

  return {
    start(peerId) {
      // Called as a call is set up: an empty log is left alone, so there is nothing to repaint.
      if (ui.log.firstChild) ui.log.replaceChildren();
      partner = peerId;
      savePartner(peerId);
    },
    clear() {
      ui.log.replaceChildren();
      partner = undefined;
      savePartner(undefined);
    },
    setEnabled(on) {
      enabled = on;
      ui.input.disabled = !on;
      ui.send.disabled = !on;
    },
    onMessage(message) {
      if (!partner) return;
      const content = message.payload.content;
      if (message.incoming === true) {
        if (message.fromUser === partner)
          appendToLog(ui.log, chatLine('stranger', 'Stranger', content));
      } else if (message.toUser === partner) {
        appendToLog(ui.log, chatLine('me', 'You', content));
      }
    },
    restore() {
      partner = loadPartner();
      if (partner)
        client.loadHistory({ withUser: partner }).catch(() => {
          showError('The conversation with the stranger could not be fetched again.');
        });
      return partner;
    },
  };
}
