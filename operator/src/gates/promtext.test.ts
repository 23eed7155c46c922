import { describe, expect, it } from '@jest/globals';
import { samplesNamed, selectFamilies } from './promselect.js';
import { PromTextParseError, parsePromFloat, parsePrometheusText } from './promtext.js';

/** Plain-object copy of labels (the parser's have no prototype). */
function plain(labels: Readonly<Record<string, string>>): Record<string, string> {
  return { ...labels };
}

function parseError(text: string): PromTextParseError {
  try {
    parsePrometheusText(text);
  } catch (err) {
    if (err instanceof PromTextParseError) return err;
    throw err;
  }
  throw new Error('expected a parse error');
}

describe('parsePrometheusText', () => {
  it('parses every metric type with HELP, TYPE and the family index', () => {
    const page = [
      '# HELP http_requests_total The total number of HTTP requests.',
      '# TYPE http_requests_total counter',
      'http_requests_total{method="post",code="200"} 1027 1395066363000',
      'http_requests_total{method="post",code="400"}    3 1395066363000',
      '',
      '# A normal comment.',
      '# TYPE temperature gauge',
      'temperature -12.5',
      '# HELP http_request_duration_seconds A histogram of the request duration.',
      '# TYPE http_request_duration_seconds histogram',
      'http_request_duration_seconds_bucket{le="0.05"} 24054',
      'http_request_duration_seconds_bucket{le="0.1"} 33444',
      'http_request_duration_seconds_bucket{le="+Inf"} 144320',
      'http_request_duration_seconds_sum 53423',
      'http_request_duration_seconds_count 144320',
      '# TYPE rpc_duration_seconds summary',
      'rpc_duration_seconds{quantile="0.5"} 4773',
      'rpc_duration_seconds{quantile="0.99"} 76656',
      'rpc_duration_seconds_sum 1.7560473e+07',
      'rpc_duration_seconds_count 2693',
      'metric_without_timestamp_and_labels 12.47',
      '# TYPE explicit_untyped untyped',
      'explicit_untyped 1',
    ].join('\n');
    const parsed = parsePrometheusText(page);

    expect(parsed.samples).toHaveLength(14);
    expect(parsed.samples[0]).toEqual({
      name: 'http_requests_total',
      labels: { method: 'post', code: '200' },
      value: 1027,
      timestampMs: 1395066363000,
    });
    expect(parsed.samples[1]?.value).toBe(3);

    const counter = parsed.families.get('http_requests_total');
    expect(counter?.type).toBe('counter');
    expect(counter?.help).toBe('The total number of HTTP requests.');
    expect(counter?.samples).toHaveLength(2);

    expect(parsed.families.get('temperature')).toMatchObject({ type: 'gauge', samples: [{ name: 'temperature', value: -12.5 }] });

    const histogram = parsed.families.get('http_request_duration_seconds');
    expect(histogram?.type).toBe('histogram');
    expect(histogram?.samples.map((s) => s.name)).toEqual([
      'http_request_duration_seconds_bucket',
      'http_request_duration_seconds_bucket',
      'http_request_duration_seconds_bucket',
      'http_request_duration_seconds_sum',
      'http_request_duration_seconds_count',
    ]);
    expect(histogram?.samples[2]?.labels).toEqual({ le: '+Inf' });
    expect(histogram?.samples[3]?.value).toBe(53423);

    const summary = parsed.families.get('rpc_duration_seconds');
    expect(summary?.type).toBe('summary');
    expect(summary?.samples.map((s) => [s.name, s.value])).toEqual([
      ['rpc_duration_seconds', 4773],
      ['rpc_duration_seconds', 76656],
      ['rpc_duration_seconds_sum', 17560473],
      ['rpc_duration_seconds_count', 2693],
    ]);

    expect(parsed.families.get('metric_without_timestamp_and_labels')?.type).toBe('untyped');
    expect(parsed.families.get('metric_without_timestamp_and_labels')?.help).toBeUndefined();
    expect(parsed.families.get('explicit_untyped')?.type).toBe('untyped');
    // Histogram and summary sub-samples do not create families of their own.
    expect(parsed.families.has('http_request_duration_seconds_bucket')).toBe(false);
    expect(parsed.families.has('rpc_duration_seconds_sum')).toBe(false);
    expect(parsed.families.size).toBe(6);
  });

  it('resolves label escapes and HELP escapes', () => {
    const parsed = parsePrometheusText(
      [
        '# HELP msdos_file_access_time_seconds Access time with a backslash \\\\ and\\na newline.',
        'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
      ].join('\n'),
    );
    const sample = parsed.samples[0];
    expect(sample?.labels).toEqual({ path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' });
    expect(sample?.value).toBe(1458255915);
    expect(parsed.families.get('msdos_file_access_time_seconds')?.help).toBe('Access time with a backslash \\ and\na newline.');
  });

  it('keeps "#", "{", "}", "," and "=" inside label values', () => {
    const parsed = parsePrometheusText('x{a="# not a comment",b="{},=",c=""} 1\n');
    expect(plain(parsed.samples[0]?.labels ?? {})).toEqual({ a: '# not a comment', b: '{},=', c: '' });
  });

  it('parses +Inf, -Inf, NaN and other float spellings', () => {
    const parsed = parsePrometheusText(['a +Inf', 'b -Inf', 'c NaN', 'd 1e-3', 'e -0.5E+2', 'f .5', 'g Inf', 'h nan'].join('\n'));
    const values = parsed.samples.map((s) => s.value);
    expect(values.slice(0, 2)).toEqual([Infinity, -Infinity]);
    expect(values[2]).toBeNaN();
    expect(values.slice(3, 7)).toEqual([0.001, -50, 0.5, Infinity]);
    expect(values[7]).toBeNaN();
  });

  it('handles Windows line endings, blank lines, leading and trailing blanks, tabs, and no final newline', () => {
    const parsed = parsePrometheusText('# TYPE a counter\r\n\r\n  a_total{x="1"}\t5 \r\n\t\r\nb 2');
    expect(parsed.samples.map((s) => [s.name, s.value])).toEqual([
      ['a_total', 5],
      ['b', 2],
    ]);
    // `a_total` belongs to the counter family `a` (the OpenMetrics naming), not to a family of its own.
    expect(parsed.families.get('a')?.samples).toHaveLength(1);
  });

  it('ignores exemplars after the value or the timestamp', () => {
    const parsed = parsePrometheusText(
      [
        '# TYPE foo histogram',
        'foo_bucket{le="0.1"} 8 # {trace_id="KOO5S4vxi0o"} 0.067',
        'foo_bucket{le="+Inf"} 17 1520879607789 # {trace_id="oHg5SJYRHA0"} 9.8 1520879607.789',
        'foo_count 17',
      ].join('\n'),
    );
    expect(parsed.samples.map((s) => [s.value, s.timestampMs])).toEqual([
      [8, undefined],
      [17, 1520879607789],
      [17, undefined],
    ]);
  });

  it('accepts a trailing comma, blanks inside the label set and an empty label set', () => {
    const parsed = parsePrometheusText('a{x="1",} 1\nb { x = "2" , y="3" } 2\nc{} 3\n');
    expect(parsed.samples.map((s) => plain(s.labels))).toEqual([{ x: '1' }, { x: '2', y: '3' }, {}]);
  });

  it('treats a label named __proto__ as an ordinary label', () => {
    const parsed = parsePrometheusText('a{__proto__="x"} 1\n');
    expect(Object.keys(parsed.samples[0]?.labels ?? {})).toEqual(['__proto__']);
    expect(parsed.samples[0]?.labels['__proto__']).toBe('x');
  });

  it('attaches HELP given before TYPE to the same family', () => {
    const parsed = parsePrometheusText('# HELP g Some gauge.\n# TYPE g gauge\ng 1\n');
    expect(parsed.families.get('g')).toMatchObject({ type: 'gauge', help: 'Some gauge.' });
  });

  it.each([
    ['a{x="1"', 1, 'unterminated'],
    ['ok 1\na{x="1} 1', 2, 'unterminated value of label x'],
    ['a{x=1} 1', 1, 'expected a quoted value'],
    ['a{x="\\t"} 1', 1, 'invalid escape'],
    ['a{x="1",x="2"} 1', 1, 'duplicate label x'],
    ['a{1x="1"} 1', 1, 'invalid label name'],
    ['a{x="1" y="2"} 1', 1, 'expected "," or "}"'],
    ['a', 1, 'missing value for a'],
    ['a{x="1"}', 1, 'missing value'],
    ['\n\na abc', 3, 'invalid value "abc"'],
    ['a 0x1F', 1, 'invalid value'],
    ['a 1 12.5', 1, 'invalid timestamp'],
    ['a 1 2 3', 1, 'unexpected text'],
    ['a-b 1', 1, 'invalid character "-" after metric name a'],
    ['# TYPE a-b counter', 1, 'invalid character "-" after metric name a in # TYPE'],
    ['1a 1', 1, 'invalid metric name'],
    ['# TYPE a blob', 1, 'invalid metric type'],
    ['# TYPE a counter extra', 1, 'invalid metric type'],
    ['# TYPE', 1, '# TYPE without a valid metric name'],
    ['# TYPE a counter\n# TYPE a gauge', 2, 'second # TYPE line for a'],
    ['a 1\n# TYPE a gauge', 2, 'after its samples'],
    ['# HELP a x\n# HELP a y', 2, 'second # HELP line for a'],
  ])('rejects %j at line %i (%s)', (text, line, fragment) => {
    const err = parseError(text);
    expect(err.line).toBe(line);
    expect(err.message).toContain(`line ${line}: `);
    expect(err.message).toContain(fragment);
  });

  it('counts lines with CRLF endings correctly in errors', () => {
    expect(parseError('a 1\r\nb 2\r\nc x\r\n').line).toBe(3);
  });
});

describe('parsePromFloat', () => {
  it.each([
    ['1', 1],
    ['-1.5e3', -1500],
    ['+Inf', Infinity],
    ['-inf', -Infinity],
    ['Infinity', Infinity],
    ['1.0', 1],
    ['2e-1', 0.2],
  ])('%s → %d', (token, value) => {
    expect(parsePromFloat(token)).toBe(value);
  });
  it.each(['', '0x10', '1_000', 'abc', '1e', '.', '--1', ' 1'])('rejects %j', (token) => {
    expect(parsePromFloat(token)).toBeUndefined();
  });
});

describe('samplesNamed', () => {
  it('finds samples through their family, for histogram parts and plain families', () => {
    const parsed = parsePrometheusText(['# TYPE h histogram', 'h_bucket{le="1"} 1', 'h_bucket{le="+Inf"} 2', 'h_sum 3', 'h_count 2', 'other 5'].join('\n'));
    expect(samplesNamed(parsed, 'h_bucket').map((s) => s.value)).toEqual([1, 2]);
    expect(samplesNamed(parsed, 'h_count').map((s) => s.value)).toEqual([2]);
    expect(samplesNamed(parsed, 'other').map((s) => s.value)).toEqual([5]);
    expect(samplesNamed(parsed, 'missing_bucket')).toEqual([]);
  });
});

describe('selectFamilies', () => {
  it('keeps only the named families and their samples, in page order', () => {
    const parsed = parsePrometheusText(['# TYPE h histogram', 'h_bucket{le="+Inf"} 2', 'h_count 2', 'a 1', '# TYPE c counter', 'c_total 3', 'b 4'].join('\n'));
    const view = selectFamilies(parsed, ['h', 'b', 'missing']);
    expect([...view.families.keys()]).toEqual(['h', 'b']);
    expect(view.samples.map((s) => s.name)).toEqual(['h_bucket', 'h_count', 'b']);
    expect(samplesNamed(view, 'h_count').map((s) => s.value)).toEqual([2]);
    expect(samplesNamed(view, 'a')).toEqual([]);
  });
});

describe('keepFamilies', () => {
  it('keeps exactly the named families, histogram series included, and parses to the same samples', async () => {
    const { keepFamilies } = await import('./promselect.js');
    const page = [
      '# HELP a_seconds A histogram.',
      '# TYPE a_seconds histogram',
      'a_seconds_bucket{le="1"} 2',
      'a_seconds_bucket{le="+Inf"} 3',
      'a_seconds_sum 1.5',
      'a_seconds_count 3',
      '# HELP b_total Other.',
      '# TYPE b_total counter',
      'b_total{code="200"} 7',
      'a_secondsx 1',
      '# TYPE c gauge',
      'c 1',
      '',
    ].join('\n');
    const kept = keepFamilies(page, new Set(['a_seconds', 'c']));
    expect(kept.split('\n')).toHaveLength(page.split('\n').length);
    expect(kept.split('\n').filter(Boolean)).toEqual([
      '# HELP a_seconds A histogram.',
      '# TYPE a_seconds histogram',
      'a_seconds_bucket{le="1"} 2',
      'a_seconds_bucket{le="+Inf"} 3',
      'a_seconds_sum 1.5',
      'a_seconds_count 3',
      '# TYPE c gauge',
      'c 1',
    ]);
    const full = parsePrometheusText(page);
    const filtered = parsePrometheusText(kept);
    expect(filtered.families.get('a_seconds')?.samples).toEqual(full.families.get('a_seconds')?.samples);
    expect(filtered.families.has('b_total')).toBe(false);
  });
});
