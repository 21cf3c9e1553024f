import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { DECIDE_AT_SCRIPT, DECIDE_SCRIPT } from '../src/generated/scripts.js'
import {
  compilePolicy,
  createRedisClient,
  RedisStore,
  runScript,
  SCRIPTS,
  waitUntilReady,
} from '../src/index.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
const admin = redis.client()

t.test('every generated script loads with SCRIPT LOAD under its embedded SHA1', async (t) => {
  const names = Object.keys(SCRIPTS)
  t.ok(names.includes('decide') && names.includes('decide-at'), 'decide scripts are generated')
  for (const s of Object.values(SCRIPTS)) {
    t.equal(await admin.script('LOAD', s.source), s.sha1, `${s.name}.lua`)
    t.notMatch(s.source, /--@include/, `${s.name}: includes are resolved at build time`)
  }
})

t.test('decide.lua opens with a header listing KEYS, ARGV and the reply', async (t) => {
  t.match(DECIDE_SCRIPT.source, /^--\[\[\ndecide\.lua/)
  for (const w of ['KEYS[i]', 'ARGV[1]', 'ARGV[k]', 'ARGV[k + 1]', 'ARGV[k + 2]', 'Reply:']) {
    t.ok(DECIDE_SCRIPT.source.includes(w), `header names ${w}`)
  }
})

t.test('NOSCRIPT (after SCRIPT FLUSH) falls back to EVAL, then EVALSHA works again', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 2000 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 2000 })
  const policy = compilePolicy([{ name: 'a', algorithm: 'fixed-window', limit: 3, windowMs: 60_000 }])
  await admin.script('FLUSH')
  t.same(await admin.script('EXISTS', DECIDE_SCRIPT.sha1), [0], 'script flushed')
  const d = await store.decide('s1', policy, 1)
  t.equal(d.allowed, true)
  t.equal(d.limits[0]?.remaining, 2)
  t.same(await admin.script('EXISTS', DECIDE_SCRIPT.sha1), [1], 'EVAL loaded it again')
  t.equal((await store.decide('s1', policy, 1)).limits[0]?.remaining, 1)
})

t.test('a decision over 2 limits is exactly one EVALSHA on the wire', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 2000 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 2000 })
  const policy = compilePolicy([
    { name: 'sec', algorithm: 'sliding-log', limit: 10, windowMs: 1000 },
    { name: 'day', algorithm: 'sliding-window', limit: 1000, windowMs: 86_400_000 },
  ])
  await store.decide('warm', policy, 1) // loads the script if needed
  const evalshaCalls = async () =>
    Number(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0)
  // MONITOR tells commands sent by clients from those a script runs (source 'lua')
  const monitor = await redis.client().monitor()
  t.teardown(() => monitor.disconnect())
  const fromClients: string[] = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua') fromClients.push(String(args[0]).toLowerCase())
  })
  const before = await evalshaCalls()
  await store.decide('s2', policy, 1)
  await new Promise((r) => setTimeout(r, 50))
  t.equal((await evalshaCalls()) - before, 1, 'INFO commandstats: one more EVALSHA')
  t.same(
    fromClients.filter((c) => c !== 'info'),
    ['evalsha'],
    "MONITOR: the only command a client sent is one EVALSHA (the INFO calls are the test's)",
  )
})

t.test('regression (late replay): a call that runs past its deadline counts nothing', async (t) => {
  const key = `rl:{${uniquePrefix('late')}}:a:sl:60000`
  const past = Date.now() - 60_000
  const expired = (await runScript(admin, DECIDE_SCRIPT, [key], [1, past, 'sl', 5, 60000])) as number[]
  t.equal(expired.length, 1, 'answers { now_ms } alone')
  t.ok((expired[0] ?? 0) > past, 'with the Redis clock')
  t.equal(await admin.exists(key), 0, 'nothing written')
  const live = (await runScript(
    admin,
    DECIDE_SCRIPT,
    [key],
    [1, Date.now() + 60_000, 'sl', 5, 60000],
  )) as number[]
  t.equal(live.length, 5, 'a call within its deadline is decided')
  t.equal(await admin.zcard(key), 1)
})

t.test('the script refuses malformed arguments with an error reply', async (t) => {
  const key = `rl:{${uniquePrefix('x')}}:a:fw:1000`
  await t.rejects(runScript(admin, DECIDE_SCRIPT, [key], [0, 0, 'fw', 5, 1000]), {
    code: 'SLUICE_ERR_STORE_SCRIPT',
    message: /cost must be an integer/,
  })
  await t.rejects(runScript(admin, DECIDE_SCRIPT, [key], [1, 0, 'zz', 5, 1000]), {
    message: /unknown algorithm/,
  })
  await t.rejects(runScript(admin, DECIDE_SCRIPT, [key], [1, 0, 'fw', 5]), { message: /expected 3 ARGV/ })
  await t.rejects(runScript(admin, DECIDE_SCRIPT, [key], [1, 0, 'fw', 0, 1000]), { message: /must be >= 1/ })
  await t.rejects(runScript(admin, DECIDE_SCRIPT, [key], [1, -5, 'fw', 5, 1000]), { message: /deadline/ })
  t.equal(await admin.exists(key), 0, 'nothing written')
})

t.test(
  'decide-at.lua uses the given clock (tests only), to the microsecond in sliding-log members',
  async (t) => {
    const key = `rl:{${uniquePrefix('x')}}:a:sl:1000`
    const nowUs = 1_700_000_000_123_456
    const reply = await runScript(admin, DECIDE_AT_SCRIPT, [key], [nowUs, 2, 'sl', 5, 1000])
    t.same(reply, [1_700_000_000_123, 1, 3, 1000, 0])
    t.same(await admin.zrange(key, 0, -1, 'WITHSCORES'), [
      '1700000000123456-1',
      '1700000000123',
      '1700000000123456-2',
      '1700000000123',
    ])
    const again = await runScript(admin, DECIDE_AT_SCRIPT, [key], [nowUs, 1, 'sl', 5, 1000])
    t.same(again, [1_700_000_000_123, 1, 2, 1000, 0], 'same microsecond: a distinct member, counted')
    t.equal(await admin.zcard(key), 3)
  },
)
