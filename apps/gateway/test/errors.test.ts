import { readFileSync } from 'node:fs'
import t from 'tap'
import { GATEWAY_ERRORS } from '../src/errors.js'

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
const section = doc.split('## @sluice/gateway')[1]?.split(/\n## /)[0] ?? ''

t.test('every gateway error code has a row in docs/errors.md and vice versa', async (t) => {
  const documented = [...section.matchAll(/^\| `(SLUICE_ERR_[A-Z_]+)` \| ([^|]+) \|/gm)].map((m) => [
    m[1],
    m[2]?.trim(),
  ])
  t.same(documented.map(([c]) => c).sort(), Object.keys(GATEWAY_ERRORS).sort())
  for (const [code, status] of documented) {
    const e = GATEWAY_ERRORS[code as keyof typeof GATEWAY_ERRORS]
    t.equal(status, e.statusCode === 0 ? '(exit 1)' : String(e.statusCode), `${code} status`)
    t.match(code, /^SLUICE_ERR_GATEWAY_/)
  }
})
