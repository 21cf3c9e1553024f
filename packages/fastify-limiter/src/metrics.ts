/**
 * The plugin's Prometheus metrics (contract section 6; the names are part of the contract).
 * Registered in one registry; a metric of the same name already there (a second plugin instance,
 * a hot reload) is reused, never registered twice. `app_id` label values are bounded.
 */
import promClient, { type Counter, type Gauge, type Histogram, type Registry } from 'prom-client'

/** The `decision` label of `sluice_decisions_total`. */
export type DecisionOutcome =
  | 'allowed'
  | 'blocked'
  | 'shadow_blocked'
  | 'fail_open'
  | 'fail_closed'
  | 'fail_local'

export const OUTCOMES: readonly DecisionOutcome[] = [
  'allowed',
  'blocked',
  'shadow_blocked',
  'fail_open',
  'fail_closed',
  'fail_local',
]

/** `app_id` label of requests without an appId (decided as `ip:<address>`). */
export const ANONYMOUS_APP_LABEL = '_ip'
/** `app_id` label of appIds past `maxAppIdLabels`. */
export const OTHER_APP_LABEL = '_other'

/** The prom-client surface used (prom-client itself, or fastify-metrics' `fastify.metrics.client`). */
export interface PromClientLike {
  Counter: typeof promClient.Counter
  Gauge: typeof promClient.Gauge
  Histogram: typeof promClient.Histogram
}

type Incrementer = { inc(value?: number): void }

export class SluiceMetrics {
  readonly registry: Registry
  readonly decisions: Counter<'app_id' | 'decision'>
  readonly duration: Histogram<'store'>
  readonly storeErrors: Counter<'kind'>
  readonly configCache: Counter<'result'>
  readonly configReloads: Counter<'source'>
  readonly redisUp: Gauge
  private readonly maxAppIdLabels: number
  /** app label -> one child counter per outcome (OUTCOMES order): no label hashing per request. */
  private readonly children = new Map<string, Incrementer[]>()
  /** Distinct real appIds given a label of their own. */
  private appLabels = 0
  /** `sluice_decision_duration_seconds` children by store kind, resolved once. */
  private readonly durationRedis: { observe(v: number): void }
  private readonly durationMemory: { observe(v: number): void }
  /** `sluice_config_cache_total` cells by result. */
  private readonly cacheCells: Map<string, Incrementer>

  constructor(registry: Registry, maxAppIdLabels: number, client: PromClientLike = promClient) {
    this.registry = registry
    this.maxAppIdLabels = maxAppIdLabels
    const reg = [registry]
    this.decisions = reuse(
      registry,
      'sluice_decisions_total',
      () =>
        new client.Counter({
          name: 'sluice_decisions_total',
          help: 'Rate-limit decisions by app and outcome',
          labelNames: ['app_id', 'decision'],
          registers: reg,
          collect: flushPending,
        }),
    )
    this.duration = reuse(
      registry,
      'sluice_decision_duration_seconds',
      () =>
        new client.Histogram({
          name: 'sluice_decision_duration_seconds',
          help: 'Duration of one store decision',
          labelNames: ['store'],
          buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
          registers: reg,
        }),
    )
    this.storeErrors = reuse(
      registry,
      'sluice_store_errors_total',
      () =>
        new client.Counter({
          name: 'sluice_store_errors_total',
          help: 'Store failures by kind',
          labelNames: ['kind'],
          registers: reg,
        }),
    )
    this.configCache = reuse(
      registry,
      'sluice_config_cache_total',
      () =>
        new client.Counter({
          name: 'sluice_config_cache_total',
          help: 'Config cache lookups by result',
          labelNames: ['result'],
          registers: reg,
          collect: flushPending,
        }),
    )
    this.configReloads = reuse(
      registry,
      'sluice_config_reloads_total',
      () =>
        new client.Counter({
          name: 'sluice_config_reloads_total',
          help: 'Config reloads by trigger',
          labelNames: ['source'],
          registers: reg,
        }),
    )
    this.redisUp = reuse(
      registry,
      'sluice_redis_up',
      () =>
        new client.Gauge({
          name: 'sluice_redis_up',
          help: '1 when the last Redis call succeeded, else 0',
          registers: reg,
        }),
    )
    this.cacheCells = new Map()
    for (const r of ['hit', 'miss', 'stale', 'invalid'] as const) {
      this.cacheCells.set(r, cell(this.configCache, this.configCache.labels(r)))
    }
    this.durationRedis = this.duration.labels('redis')
    this.durationMemory = this.duration.labels('memory')
  }

  /** Observe one store decision's duration (seconds), without resolving the label per call. */
  observeDuration(store: 'redis' | 'memory', seconds: number): void {
    ;(store === 'redis' ? this.durationRedis : this.durationMemory).observe(seconds)
  }

  /** Set `sluice_redis_up`; a value equal to the last one set is not written again. */
  setRedisUp(up: 0 | 1): void {
    if (lastUp.get(this.redisUp) === up) return
    lastUp.set(this.redisUp, up)
    this.redisUp.set(up)
  }

  /** Count one config cache lookup (`hit`, `miss`, `stale`, `invalid`). */
  configCacheResult(result: string): void {
    const c = this.cacheCells.get(result)
    if (c !== undefined) c.inc()
    else this.configCache.labels(result).inc()
  }

  /** Count one decision for `appId` (`null`: anonymous). */
  decision(appId: string | null, outcome: DecisionOutcome): void {
    const label = appId === null ? ANONYMOUS_APP_LABEL : appId
    let row = this.children.get(label)
    if (row === undefined) {
      if (appId === null) row = this.row(label)
      else if (this.appLabels >= this.maxAppIdLabels) {
        row = this.children.get(OTHER_APP_LABEL) ?? this.row(OTHER_APP_LABEL)
      } else {
        this.appLabels++
        row = this.row(label)
      }
    }
    row[OUTCOMES.indexOf(outcome)]!.inc()
  }

  private row(label: string): Incrementer[] {
    const row = OUTCOMES.map((o) => cell(this.decisions, this.decisions.labels(label, o)))
    this.children.set(label, row)
    return row
  }
}

/**
 * The per-request counters (decisions, config cache) count in plain numbers and hand them to
 * prom-client when the metric is collected (every scrape and `get()` runs `collect`), so a request
 * pays no label hashing. Only for metrics created here (their `collect` is `flushPending`); a
 * metric of the same name created by someone else is incremented directly.
 */
class PendingCell implements Incrementer {
  pending = 0
  constructor(private readonly child: Incrementer) {}
  inc(value = 1): void {
    this.pending += value
  }
  flush(): void {
    if (this.pending !== 0) {
      const v = this.pending
      this.pending = 0
      this.child.inc(v)
    }
  }
}

const pendingCells = new WeakMap<object, Set<PendingCell>>()

/** `collect` of the lazily counted metrics (`this` is the metric). */
function flushPending(this: object): void {
  const cells = pendingCells.get(this)
  if (cells !== undefined) for (const c of cells) c.flush()
}

/** An incrementer for `child` of `metric`: a pending cell when the metric collects them, else the child. */
function cell(metric: object, child: Incrementer): Incrementer {
  const collect = (metric as { collect?: unknown }).collect
  if (collect !== flushPending) return child
  let cells = pendingCells.get(metric)
  if (cells === undefined) {
    cells = new Set()
    pendingCells.set(metric, cells)
  }
  const c = new PendingCell(child)
  cells.add(c)
  return c
}

/** Last value set on each `sluice_redis_up` gauge (shared by plugin instances reusing the metric). */
const lastUp = new WeakMap<Gauge, number>()

function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create()
}

/** prom-client's default registry (used when neither `registry` nor fastify-metrics is given). */
export const defaultRegistry: Registry = promClient.register
export { promClient }
