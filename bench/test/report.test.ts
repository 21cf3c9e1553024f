import t from 'tap'
import { CONFIGS } from '../src/configs.js'
import type { LoadResult } from '../src/load.js'
import { evaluateGoals, summarize } from '../src/report.js'
import type { RunRecord } from '../src/run.js'
import { median, quantile } from '../src/util.js'

const load = (rps: number, status429 = 0): LoadResult => ({
  requests: rps,
  durationS: 1,
  rps,
  p50Ms: 1,
  p90Ms: 2,
  p99Ms: 3,
  ok2xx: rps - status429,
  status429,
  otherStatus: 0,
  errors: 0,
  timeouts: 0,
})

const rec = (
  config: string,
  round: number,
  seq: number,
  rps: number,
  extra: Partial<RunRecord> = {},
): RunRecord => ({
  config,
  round,
  seq,
  ok: true,
  load: load(rps, config.endsWith('attack') ? rps - 1 : 0),
  redisClientCmdsPerReq: 1,
  ...extra,
})

t.test('ratio is per round, against the mean of the two bare neighbours', async (t) => {
  const records = [
    rec('bare', 0, 0, 1000),
    rec('sluice-sliding-log', 0, 1, 900),
    rec('bare', 0, 2, 800),
    rec('frl-redis', 0, 3, 480),
    rec('bare', 0, 4, 800),
  ]
  const configs = CONFIGS.filter((c) => c.name === 'sluice-sliding-log' || c.name === 'frl-redis')
  const [frl, sl] = summarize(records, configs)
  t.equal(sl?.ratio, 1)
  t.equal(frl?.ratio, 0.6)
  t.equal(sl?.vsPeers['frl-redis'], 1.667)
  t.equal(sl?.pathOk, true)
})

t.test('a configuration without numbers is not ok; goals say not measured', async (t) => {
  const records: RunRecord[] = [
    rec('bare', 0, 0, 1000),
    { config: 'sluice-sliding-log', round: 0, seq: 1, ok: false, error: 'boom' },
    rec('bare', 0, 2, 1000),
  ]
  const s = summarize(
    records,
    CONFIGS.filter((c) => c.name === 'sluice-sliding-log'),
  )
  t.equal(s[0]?.ok, false)
  t.equal(s[0]?.error, 'boom')
  const goals = evaluateGoals(s, {})
  t.ok(goals.every((g) => g.met === null))
})

t.test('median and quantile', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 2, 3]), 2.5)
  t.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10)
  t.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 5)
})
