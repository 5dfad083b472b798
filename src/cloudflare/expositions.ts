/**
 * Prometheus text expositions of several objects added up into one (the Worker's `/metrics` over
 * every gateway). Pure, so Node's tests check it.
 */

/** Prometheus text expositions added up series by series (counters, gauges, histograms alike). */
export function addExpositions(texts: readonly string[]): string {
  const comments: string[] = [];
  const seenComments = new Set<string>();
  const sums = new Map<string, number>();
  for (const text of texts)
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        if (!seenComments.has(line)) {
          seenComments.add(line);
          comments.push(line);
        }
        continue;
      }
      const cut = line.lastIndexOf(' ');
      const series = line.slice(0, cut);
      sums.set(series, (sums.get(series) ?? 0) + Number(line.slice(cut + 1)));
    }
  // Each series after the comments of its metric, in the order they first came.
  const out: string[] = [];
  const placed = new Set<string>();
  for (const comment of comments) {
    out.push(comment);
    if (!comment.startsWith('# TYPE ')) continue;
    const name = comment.split(' ')[2]!;
    for (const [series, value] of sums)
      if (!placed.has(series) && belongsTo(metricOf(series), name)) {
        placed.add(series);
        out.push(`${series} ${value}`);
      }
  }
  for (const [series, value] of sums) if (!placed.has(series)) out.push(`${series} ${value}`);
  return `${out.join('\n')}\n`;
}

const metricOf = (series: string) => {
  const brace = series.indexOf('{');
  return brace < 0 ? series : series.slice(0, brace);
};

/** Whether a sample named `sample` is of metric `name` (a histogram's are `_bucket/_sum/_count`). */
const belongsTo = (sample: string, name: string) =>
  sample === name || ['_bucket', '_sum', '_count'].some((suffix) => sample === name + suffix);
