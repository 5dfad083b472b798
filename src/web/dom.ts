/** Small DOM helpers of the demo page. Server strings only ever reach the page through `textContent`. */

export function element<T extends HTMLElement>(id: string, type: { new (): T }): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`#${id} is missing from the page`);
  return found;
}

/** One line of a chat log: who (as `label`, `data-from` = `from`) and what. */
export function chatLine(from: string, label: string, text: string): HTMLElement {
  const line = document.createElement('p');
  line.className = 'chat-line';
  line.dataset.from = from;
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = label;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  line.append(who, body);
  return line;
}

/** Appends `line`, following the log down only if the reader was already at its bottom. */
export function appendToLog(log: HTMLElement, line: HTMLElement): void {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  log.append(line);
  if (atBottom) log.scrollTop = log.scrollHeight;
}
