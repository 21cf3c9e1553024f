// The gateway (built, as a process) started while Redis is unreachable: it must come up (liveness
// 200, readiness 503), answer requests by the default config's fail mode within the bound, and
// start deciding on Redis once Redis is reachable, without a restart; the default config gets written.
import { startRedis } from '@sluice/test-redis'
import t from 'tap'
import { eventually } from '../src/configs.js'
import { startFaultProxy } from '../src/fault-proxy.js'
import { startGateway } from '../src/gateway-process.js'

const redis = await startRedis({ own: true })
const proxy = await startFaultProxy(redis.port)
proxy.refuse()
const direct = redis.client()
const gw = await startGateway({ env: { REDIS_URL: proxy.url, REDIS_TIMEOUT_MS: '100', LOG_LEVEL: 'info' } })
t.teardown(async () => {
  await gw.stop()
  await proxy.close()
  await redis.stop()
})

t.test('up without Redis, then deciding on Redis once it is reachable', async (t) => {
  const health = await fetch(`${gw.origin}/healthz`)
  t.equal(health.status, 200, '/healthz 200 without Redis')
  const ready = await fetch(`${gw.origin}/readyz`)
  t.equal(ready.status, 503, `/readyz 503 without Redis: ${(await ready.text()).slice(0, 120)}`)
  let worst = 0
  const statuses = new Set<number>()
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now()
    const r = await fetch(`${gw.origin}/cold`, { headers: { 'x-app-id': 'cold-app' } })
    const body = (await r.json()) as { outcome?: string }
    worst = Math.max(worst, performance.now() - t0)
    statuses.add(r.status)
    if (r.status === 200) t.equal(body.outcome, 'fail_local', 'decided locally (default failMode local)')
  }
  t.same([...statuses], [200], 'answered by the fail mode')
  t.ok(worst < 2_000, `worst ${worst.toFixed(0)} ms while Redis is unreachable`)
  t.equal(await direct.exists('rateLimitConfig:default'), 0, 'nothing written yet')
  proxy.heal()
  const ms = await eventually(
    'deciding on Redis',
    async () => {
      const r = await fetch(`${gw.origin}/cold`, { headers: { 'x-app-id': 'cold-app' } })
      return ((await r.json()) as { outcome?: string }).outcome === 'allowed'
    },
    20_000,
    100,
  )
  t.comment(`deciding on Redis ${ms} ms after Redis became reachable`)
  await eventually(
    'default config written',
    async () => (await direct.exists('rateLimitConfig:default')) === 1,
    20_000,
  )
  t.pass('rateLimitConfig:default written once Redis is reachable')
  await eventually('ready', async () => (await fetch(`${gw.origin}/readyz`)).status === 200, 10_000)
  t.pass('/readyz 200 after recovery')
  t.notOk(gw.exited(), 'the process never exited')
})
