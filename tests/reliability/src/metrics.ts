/**
 * A small Prometheus text-format reader for assertions: `parseMetrics(text)` gives every sample,
 * `sum(samples, name, labels)` adds the samples of one metric whose labels include `labels`.
 */

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = LINE.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(LABEL)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    }
    const v = m[3]!
    const value =
      v === '+Inf' ? Number.POSITIVE_INFINITY : v === '-Inf' ? Number.NEGATIVE_INFINITY : Number(v)
    out.push({ name: m[1]!, labels, value })
  }
  return out
}

/** Sum of the samples of `name` whose labels include every pair of `labels`. */
export function sum(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  let total = 0
  for (const s of samples) {
    if (s.name !== name) continue
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value
  }
  return total
}

/** The value of the first sample of `name` (e.g. a gauge without labels), or undefined. */
export function value(samples: readonly Sample[], name: string): number | undefined {
  return samples.find((s) => s.name === name)?.value
}

/** Distinct values of label `label` over the samples of `name`. */
export function labelValues(samples: readonly Sample[], name: string, label: string): Set<string> {
  const out = new Set<string>()
  for (const s of samples) {
    if (s.name === name && s.labels[label] !== undefined) out.add(s.labels[label])
  }
  return out
}
