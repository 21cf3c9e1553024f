/**
 * Differential test: MemoryStore and the Redis decide script (decide-at.lua, its tests-only clock variant) give
 * identical decisions for the same clock (to the microsecond), on random sequences of requests over random policies.
 */
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import fc from 'fast-check'
import t from 'tap'
import { DECIDE_AT_SCRIPT } from '../src/generated/scripts.js'
import {
  ALGORITHMS,
  compilePolicy,
  counterKey,
  createRedisClient,
  type LimitSpec,
  MemoryStore,
  parseDecision,
  waitUntilReady,
} from '../src/index.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
await redis.client().script('LOAD', DECIDE_AT_SCRIPT.source)
const client = createRedisClient({ url: redis.url, timeoutMs: 2000 })
await waitUntilReady(client)
t.teardown(() => client.disconnect())

const limitArb: fc.Arbitrary<Omit<LimitSpec, 'name'>> = fc.record({
  algorithm: fc.constantFrom(...ALGORITHMS),
  limit: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constantFrom(3, 7, 1000, 1_000_000_000)),
  windowMs: fc.oneof(fc.integer({ min: 1, max: 2000 }), fc.constantFrom(999, 1000, 3000, 2_678_400_000)),
})
const stepArb = fc.record({
  dtUs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2_500_000 }), fc.integer({ min: 0, max: 2000 })),
  cost: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 8 })),
  subject: fc.integer({ min: 0, max: 1 }),
})

t.test('memory and Redis give the same decisions for the same clock', async (t) => {
  let runs = 0
  await fc.assert(
    fc.asyncProperty(
      fc.array(limitArb, { minLength: 1, maxLength: 3 }),
      fc.array(stepArb, { minLength: 1, maxLength: 25 }),
      fc.integer({ min: 0, max: 1e12 }),
      async (specs, steps, startUs) => {
        runs++
        const policy = compilePolicy(specs.map((s, i) => ({ ...s, name: `l${i}` })))
        let nowUs = 1_700_000_000_000_000 + startUs
        let nowMs = nowUs / 1000
        const memory = new MemoryStore({ now: () => nowMs, sweepIntervalMs: 0 })
        const prefix = uniquePrefix('rl')
        const subjects = [uniquePrefix('a'), uniquePrefix('b')]
        for (const step of steps) {
          nowUs += step.dtUs
          nowMs = nowUs / 1000
          const subject = subjects[step.subject] as string
          const m = await memory.decide(subject, policy, step.cost)
          // decide-at.lua (the tests-only clock variant of decide.lua), then PERSIST the keys in the
          // same MULTI: Redis would expire keys by its real clock, not the fake one. Redis then keeps
          // state the memory store has expired, which also proves expiry never changes an answer
          // (expired state reads exactly like no state).
          const keys = policy.keySuffixes.map((s) => counterKey(prefix, subject, s))
          const tx = client
            .multi()
            .evalsha(DECIDE_AT_SCRIPT.sha1, keys.length, ...keys, nowUs, step.cost, ...policy.argv)
          for (const k of keys) tx.persist(k)
          const res = await tx.exec()
          const [err, reply] = res?.[0] ?? [new Error('no reply'), null]
          if (err) throw err
          const r = parseDecision(reply, policy)
          if (JSON.stringify(m) !== JSON.stringify(r)) {
            throw new Error(
              `differ at now=${nowMs}:\nmemory ${JSON.stringify(m)}\nredis  ${JSON.stringify(r)}`,
            )
          }
        }
        await memory.close()
      },
    ),
    { numRuns: 300 },
  )
  t.equal(runs >= 300, true, `${runs} random sequences agreed`)
})
