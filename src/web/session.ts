/**
 * What the demo page keeps in sessionStorage so a reload resumes where it was: the userId and
 * reconnect token (the server hands the session over), and the stranger whose chat was on screen.
 * Storage can be off (privacy settings): then every load starts afresh.
 */
import { randomToken } from '../client/index.ts';

const USER_KEY = 'aleatoria.userId';
const TOKEN_KEY = 'aleatoria.token';
const PARTNER_KEY = 'aleatoria.partner';

function read(key: string): string | undefined {
  try {
    return sessionStorage.getItem(key) ?? undefined;
  } catch {
    return undefined;
  }
}

function write(key: string, value: string | undefined): void {
  try {
    if (value === undefined) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    // See the module comment.
  }
}

/** The identity of the last load of this tab, or a fresh guest id (the client makes the token). */
export function loadSession(): { userId: string; token?: string } {
  const userId = read(USER_KEY);
  const token = read(TOKEN_KEY);
  if (userId && token) return { userId, token };
  return { userId: `guest-${randomToken(4)}` };
}

export function saveSession(userId: string, token: string): void {
  write(USER_KEY, userId);
  write(TOKEN_KEY, token);
}

/** The stranger whose chat is on screen, if any. */
export const loadPartner = () => read(PARTNER_KEY);

export const savePartner = (peerId: string | undefined) => write(PARTNER_KEY, peerId);
