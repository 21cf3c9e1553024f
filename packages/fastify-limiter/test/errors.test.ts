import { readFileSync } from 'node:fs'
import t from 'tap'
import { PLUGIN_ERRORS, PluginOptionsError, SluicePluginError } from '../src/errors.js'

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
const section = doc.split(/^## /m).find((s) => s.startsWith('@sluice/fastify-limiter')) ?? ''

t.test('every error code has a row in docs/errors.md (this package section) and vice versa', async (t) => {
  const rows = new Map<string, string>()
  for (const line of section.split('\n')) {
    const m = /^\|\s*`?(SLUICE_ERR_[A-Z_]+)`?\s*\|\s*([^|]*)\|/.exec(line)
    if (m) rows.set(m[1]!, m[2]!.trim())
  }
  t.same([...rows.keys()].sort(), Object.keys(PLUGIN_ERRORS).sort())
  for (const [code, def] of Object.entries(PLUGIN_ERRORS)) {
    t.equal(rows.get(code), String(def.statusCode), `${code} status`)
  }
})

t.test('errors carry code and status', async (t) => {
  const e = new SluicePluginError('SLUICE_ERR_UNKNOWN_APP')
  t.equal(e.statusCode, 403)
  t.equal(e.code, 'SLUICE_ERR_UNKNOWN_APP')
  t.equal(new PluginOptionsError('x').code, 'SLUICE_ERR_PLUGIN_OPTIONS')
})
