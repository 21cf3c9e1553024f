import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  redisErrorCode,
  SluiceError,
  SluiceStoreError,
  StoreConnectionError,
  StoreOptionsError,
  StoreScriptError,
  StoreTimeoutError,
  toStoreError,
} from '../src/index.js'

const source = readFileSync(new URL('../src/errors.ts', import.meta.url), 'utf8')
const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')

function docRows(): Map<string, number> {
  const start = docs.indexOf('## @sluice/limiter-core')
  const end = docs.indexOf('\n## ', start + 1)
  const section = docs.slice(start, end < 0 ? undefined : end)
  const rows = new Map<string, number>()
  for (const m of section.matchAll(/^\| `(SLUICE_ERR_[A-Z_]+)` \| (\d{3}|—|-) \|/gm)) {
    rows.set(m[1] as string, Number(m[2]))
  }
  return rows
}

t.test(
  'every code in src/errors.ts has a row in docs/errors.md (limiter-core section) and back',
  async (t) => {
    const codes = new Set([...source.matchAll(/'(SLUICE_ERR_[A-Z_]+)'/g)].map((m) => m[1] as string))
    const rows = docRows()
    t.ok(codes.size >= 5)
    t.same([...codes].sort(), [...rows.keys()].sort(), 'same codes in both')
  },
)

t.test('the store errors carry the status documented for them', async (t) => {
  const rows = docRows()
  const errors: SluiceError[] = [
    new SluiceStoreError('other', 'x'),
    new StoreTimeoutError(100),
    new StoreConnectionError('x'),
    new StoreScriptError('x'),
    new StoreOptionsError('x'),
  ]
  for (const e of errors) {
    t.type(e, SluiceError)
    t.type(e, Error)
    t.equal(e.statusCode, rows.get(e.code), `${e.code} status matches the docs`)
    t.equal(e.name, e.constructor.name)
  }
  t.same(
    errors.slice(0, 4).map((e) => (e as SluiceStoreError).kind),
    ['other', 'timeout', 'connection', 'script'],
  )
})

class ReplyError extends Error {
  override name = 'ReplyError'
}

t.test('redisErrorCode reads the first word of a Redis error reply, in one place', async (t) => {
  t.equal(redisErrorCode(new ReplyError('NOSCRIPT No matching script. Please use EVAL.')), 'NOSCRIPT')
  t.equal(redisErrorCode(new ReplyError('ERR Error running script')), 'ERR')
  t.equal(redisErrorCode(new ReplyError('CLUSTERDOWN The cluster is down')), 'CLUSTERDOWN')
  t.equal(redisErrorCode(new Error('Connection is closed.')), null)
  t.equal(redisErrorCode('NOSCRIPT'), null)
  t.equal(redisErrorCode(null), null)
})

t.test('toStoreError classifies client errors into the kind label', async (t) => {
  const cases: [unknown, string][] = [
    [new Error('Command timed out'), 'timeout'],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'connection'],
    [new Error('Connection is closed.'), 'connection'],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'connection'],
    [Object.assign(new Error('x'), { name: 'MaxRetriesPerRequestError' }), 'connection'],
    [new ReplyError('LOADING Redis is loading the dataset in memory'), 'connection'],
    [new ReplyError('CLUSTERDOWN Hash slot not served'), 'connection'],
    [new ReplyError('ERR user_script:1: Script attempted to access nonexistent global variable'), 'script'],
    [new ReplyError('CROSSSLOT Keys in request do not hash to the same slot'), 'script'],
    [new ReplyError('BUSY Redis is busy running a script'), 'other'],
    [new Error('something else'), 'other'],
    ['a string', 'other'],
  ]
  for (const [err, kind] of cases) {
    const e = toStoreError(err)
    t.type(e, SluiceStoreError)
    t.equal(e.kind, kind, String((err as Error).message ?? err))
    if (err instanceof Error) t.equal(e.cause, err, 'keeps the cause')
  }
  const already = new StoreTimeoutError(5)
  t.equal(toStoreError(already), already, 'a store error is returned unchanged')
})
