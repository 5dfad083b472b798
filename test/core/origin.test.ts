import { describe, it, expect } from 'vitest';
import { checkOrigin, parseAllowedOrigins } from '../../src/core/origin.ts';

const ALLOWED = { allowed: true };
const NOT_ALLOWED = { allowed: false, reason: 'not_allowed' };
const MALFORMED = { allowed: false, reason: 'malformed' };
const MISSING = { allowed: false, reason: 'missing' };

const production = parseAllowedOrigins('https://www.aleatoria.chat');
/** No Host header: only the ALLOWED_ORIGINS entries decide. */
const check = (
  policy: ReturnType<typeof parseAllowedOrigins>,
  origin: string | undefined,
  host?: string,
) => checkOrigin(policy, false, origin, host);

describe("the spec's Example Validation (ALLOWED_ORIGINS=https://www.aleatoria.chat)", () => {
  it('allows https://www.aleatoria.chat', () => {
    expect(check(production, 'https://www.aleatoria.chat')).toStrictEqual(ALLOWED);
  });

  it('allows https://www.aleatoria.chat:443 (default port normalized)', () => {
    expect(check(production, 'https://www.aleatoria.chat:443')).toStrictEqual(ALLOWED);
  });

  it('rejects http://www.aleatoria.chat (wrong scheme)', () => {
    expect(check(production, 'http://www.aleatoria.chat')).toStrictEqual(NOT_ALLOWED);
  });

  it('rejects https://evil.com', () => {
    expect(check(production, 'https://evil.com')).toStrictEqual(NOT_ALLOWED);
  });

  it('rejects a missing Origin', () => {
    expect(checkOrigin(production, false, undefined, 'www.aleatoria.chat')).toStrictEqual(MISSING);
    expect(checkOrigin(production, false, null, undefined)).toStrictEqual(MISSING);
    expect(checkOrigin(production, false, '', undefined)).toStrictEqual(MISSING);
  });

  it('allows a missing Origin when allowNoOrigin is set', () => {
    expect(checkOrigin(production, true, undefined, undefined)).toStrictEqual(ALLOWED);
    expect(checkOrigin(production, true, null, undefined)).toStrictEqual(ALLOWED);
  });

  it('still checks a present Origin when allowNoOrigin is set', () => {
    expect(checkOrigin(production, true, 'https://evil.com', undefined)).toStrictEqual(NOT_ALLOWED);
  });
});

describe('matching entries', () => {
  it('does not imply subdomains', () => {
    expect(check(production, 'https://sub.www.aleatoria.chat')).toStrictEqual(NOT_ALLOWED);
    expect(check(production, 'https://aleatoria.chat')).toStrictEqual(NOT_ALLOWED);
  });

  it('does not match a host that merely ends with the allowed one', () => {
    expect(check(production, 'https://evilwww.aleatoria.chat')).toStrictEqual(NOT_ALLOWED);
    expect(check(production, 'https://www.aleatoria.chat.evil.com')).toStrictEqual(NOT_ALLOWED);
  });

  it('compares hosts case-insensitively', () => {
    expect(check(production, 'https://WWW.Aleatoria.CHAT')).toStrictEqual(ALLOWED);
    expect(
      check(parseAllowedOrigins('https://WWW.ALEATORIA.chat'), 'https://www.aleatoria.chat'),
    ).toStrictEqual(ALLOWED);
  });

  it('normalizes the http default port 80', () => {
    const policy = parseAllowedOrigins('http://example.com');
    expect(check(policy, 'http://example.com')).toStrictEqual(ALLOWED);
    expect(check(policy, 'http://example.com:80')).toStrictEqual(ALLOWED);
    expect(check(policy, 'http://example.com:8080')).toStrictEqual(NOT_ALLOWED);
    expect(check(parseAllowedOrigins('http://example.com:80'), 'http://example.com')).toStrictEqual(
      ALLOWED,
    );
  });

  it('requires an explicit non-default port to match exactly', () => {
    const policy = parseAllowedOrigins('https://app.example.com:8443');
    expect(check(policy, 'https://app.example.com:8443')).toStrictEqual(ALLOWED);
    expect(check(policy, 'https://app.example.com')).toStrictEqual(NOT_ALLOWED);
    expect(check(policy, 'https://app.example.com:443')).toStrictEqual(NOT_ALLOWED);
    expect(check(policy, 'https://app.example.com:8444')).toStrictEqual(NOT_ALLOWED);
  });

  it('does not treat https:443 and http:443 as the same origin', () => {
    expect(check(production, 'http://www.aleatoria.chat:443')).toStrictEqual(NOT_ALLOWED);
  });

  it('allows an Origin that matches any entry of a comma-separated list', () => {
    const policy = parseAllowedOrigins(
      ' https://a.example.com , http://localhost:3000,https://b.example.com ',
    );
    expect(check(policy, 'https://a.example.com')).toStrictEqual(ALLOWED);
    expect(check(policy, 'http://localhost:3000')).toStrictEqual(ALLOWED);
    expect(check(policy, 'https://b.example.com')).toStrictEqual(ALLOWED);
    expect(check(policy, 'https://c.example.com')).toStrictEqual(NOT_ALLOWED);
  });
});

describe('wildcard entries', () => {
  const policy = parseAllowedOrigins('https://*.example.com');

  it('allows one and several subdomain levels', () => {
    expect(check(policy, 'https://a.example.com')).toStrictEqual(ALLOWED);
    expect(check(policy, 'https://a.b.example.com')).toStrictEqual(ALLOWED);
    expect(check(policy, 'https://A.Example.COM:443')).toStrictEqual(ALLOWED);
  });

  it('does not allow the bare domain', () => {
    expect(check(policy, 'https://example.com')).toStrictEqual(NOT_ALLOWED);
  });

  it('does not allow a look-alike domain', () => {
    expect(check(policy, 'https://evil-example.com')).toStrictEqual(NOT_ALLOWED);
    expect(check(policy, 'https://example.com.evil.net')).toStrictEqual(NOT_ALLOWED);
  });

  it('keeps the scheme and port of the entry', () => {
    expect(check(policy, 'http://a.example.com')).toStrictEqual(NOT_ALLOWED);
    expect(check(policy, 'https://a.example.com:8443')).toStrictEqual(NOT_ALLOWED);
  });
});

describe('malformed Origin headers', () => {
  it.each([
    ['null'],
    ['garbage'],
    ['https://x.com/path'],
    ['https://x.com/'],
    ['ftp://x.com'],
    ['https://user@x.com'],
    ['https://user:pw@x.com'],
    ['https://x.com?q=1'],
    ['https://x.com#frag'],
    ['javascript:alert(1)'],
    ['//x.com'],
    [`https://${'a'.repeat(3000)}.com`],
  ])('rejects %j as malformed', (origin) => {
    expect(check(production, origin, 'x.com')).toStrictEqual(MALFORMED);
  });
});

describe('same-origin rule (Origin host equals the Host header)', () => {
  it('allows http://localhost:8085 served from Host localhost:8085 with no ALLOWED_ORIGINS entry', () => {
    expect(check(production, 'http://localhost:8085', 'localhost:8085')).toStrictEqual(ALLOWED);
  });

  it('rejects http://localhost:8085 when the Host is localhost:9999', () => {
    expect(check(production, 'http://localhost:8085', 'localhost:9999')).toStrictEqual(NOT_ALLOWED);
  });

  it('rejects a different host name on the same port', () => {
    expect(check(production, 'http://evil.test:8085', 'localhost:8085')).toStrictEqual(NOT_ALLOWED);
  });

  it("reads a Host without port as the default port of the Origin's scheme", () => {
    expect(check(production, 'http://chat.example.org', 'chat.example.org')).toStrictEqual(ALLOWED);
    expect(check(production, 'https://chat.example.org', 'chat.example.org')).toStrictEqual(
      ALLOWED,
    );
    expect(check(production, 'http://chat.example.org:80', 'chat.example.org')).toStrictEqual(
      ALLOWED,
    );
    expect(check(production, 'http://chat.example.org:8085', 'chat.example.org')).toStrictEqual(
      NOT_ALLOWED,
    );
  });

  it('matches an explicit default port in the Host header', () => {
    expect(check(production, 'http://chat.example.org', 'chat.example.org:80')).toStrictEqual(
      ALLOWED,
    );
    expect(check(production, 'https://chat.example.org', 'chat.example.org:80')).toStrictEqual(
      NOT_ALLOWED,
    );
  });

  it('compares the Host header case-insensitively', () => {
    expect(check(production, 'http://localhost:8085', 'LocalHost:8085')).toStrictEqual(ALLOWED);
  });

  it('handles bracketed IPv6 hosts', () => {
    expect(check(production, 'http://[::1]:8085', '[::1]:8085')).toStrictEqual(ALLOWED);
    expect(check(production, 'http://[::1]:8085', '[::2]:8085')).toStrictEqual(NOT_ALLOWED);
  });

  it('ignores a garbage Host header', () => {
    expect(check(production, 'http://localhost:8085', 'localhost:8085/evil')).toStrictEqual(
      NOT_ALLOWED,
    );
    expect(check(production, 'http://localhost:8085', '')).toStrictEqual(NOT_ALLOWED);
  });
});

describe('ALLOWED_ORIGINS=*', () => {
  const any = parseAllowedOrigins('*');

  it('allows any Origin', () => {
    expect(any).toStrictEqual({ any: true, entries: [] });
    expect(check(any, 'https://evil.com')).toStrictEqual(ALLOWED);
    expect(check(any, 'http://localhost:1234')).toStrictEqual(ALLOWED);
    expect(check(any, 'null')).toStrictEqual(ALLOWED);
  });

  it('still refuses a missing Origin unless allowNoOrigin', () => {
    expect(checkOrigin(any, false, undefined, undefined)).toStrictEqual(MISSING);
    expect(checkOrigin(any, true, undefined, undefined)).toStrictEqual(ALLOWED);
  });
});

describe('parseAllowedOrigins', () => {
  it('parses an entry into scheme, lower-case host and normalized port', () => {
    expect(parseAllowedOrigins('https://www.aleatoria.chat')).toStrictEqual({
      any: false,
      entries: [{ scheme: 'https:', host: 'www.aleatoria.chat', port: '443', wildcard: false }],
    });
    expect(parseAllowedOrigins('http://Example.com:8080,https://*.example.com')).toStrictEqual({
      any: false,
      entries: [
        { scheme: 'http:', host: 'example.com', port: '8080', wildcard: false },
        { scheme: 'https:', host: 'example.com', port: '443', wildcard: true },
      ],
    });
  });

  it.each([
    ['not-a-url'],
    ['https://x.com/path'],
    ['ftp://x.com'],
    ['https://user@x.com'],
    ['www.aleatoria.chat'],
    ['null'],
    [''],
    [' , '],
    ['*,https://x.com'],
    ['https://x.com,garbage'],
  ])('throws on %j', (list) => {
    expect(() => parseAllowedOrigins(list)).toThrow(Error);
  });

  it('names the offending entry in the error', () => {
    expect(() => parseAllowedOrigins('https://ok.example.com,not-a-url')).toThrow(/not-a-url/);
  });
});
