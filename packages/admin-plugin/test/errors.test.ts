import { readFileSync } from 'node:fs'
import { ADMIN_ERRORS, AdminError } from '@sluice/admin-plugin'
import t from 'tap'

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
const section = doc.split('## @sluice/admin-plugin')[1]?.split('\n## ')[0] ?? ''

t.test('every code of src/errors.ts has a row in docs/errors.md, and back', async (t) => {
  const rows = new Map<string, number>()
  for (const m of section.matchAll(/^\| `(SLUICE_ERR_[A-Z_]+)` \| (\d{3}) \|/gm))
    rows.set(m[1] as string, Number(m[2]))
  for (const [code, [status]] of Object.entries(ADMIN_ERRORS)) {
    t.equal(rows.get(code), status, `${code} documented with status ${status}`)
    t.equal(new AdminError(code as keyof typeof ADMIN_ERRORS).statusCode, status)
  }
  t.same([...rows.keys()].sort(), Object.keys(ADMIN_ERRORS).sort(), 'no stale rows')
})
