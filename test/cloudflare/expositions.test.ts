import { describe, expect, it } from 'vitest';
import { addExpositions } from '../../src/cloudflare/expositions.ts';

describe('addExpositions', () => {
  it('adds each series up across expositions, comments once, each series under its metric', () => {
    const one = [
      '# HELP a_total A.',
      '# TYPE a_total counter',
      'a_total{type="x"} 2',
      'a_total{type="y"} 1',
      '# HELP g A gauge.',
      '# TYPE g gauge',
      'g 3',
      '',
    ].join('\n');
    const two = [
      '# HELP a_total A.',
      '# TYPE a_total counter',
      'a_total{type="x"} 5',
      '# HELP g A gauge.',
      '# TYPE g gauge',
      'g 4',
      '# HELP h_seconds H.',
      '# TYPE h_seconds histogram',
      'h_seconds_bucket{le="1"} 2',
      'h_seconds_sum 0.5',
      '',
    ].join('\n');
    expect(addExpositions([one, two])).toBe(
      [
        '# HELP a_total A.',
        '# TYPE a_total counter',
        'a_total{type="x"} 7',
        'a_total{type="y"} 1',
        '# HELP g A gauge.',
        '# TYPE g gauge',
        'g 7',
        '# HELP h_seconds H.',
        '# TYPE h_seconds histogram',
        'h_seconds_bucket{le="1"} 2',
        'h_seconds_sum 0.5',
        '',
      ].join('\n'),
    );
  });

  it('puts a series under its own metric, not one whose name is a prefix of it', () => {
    const text = '# TYPE a gauge\na 1\n# TYPE a_b gauge\na_b 2\n';
    expect(addExpositions([text, text])).toBe('# TYPE a gauge\na 2\n# TYPE a_b gauge\na_b 4\n');
  });

  it('keeps a label value with spaces whole', () => {
    expect(addExpositions(['c{x="a b"} 1\n', 'c{x="a b"} 2\n'])).toBe('c{x="a b"} 3\n');
  });
});
