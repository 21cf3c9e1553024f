import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'

const FILE = fileURLToPath(new URL('../../../docs/alerts.yaml', import.meta.url))

t.test('alerts.yaml covers the contract metrics', async (t) => {
  const doc = parse(readFileSync(FILE, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }
  const rules = doc.groups.flatMap((g) => g.rules)
  const all = rules.map((r) => r.expr).join('\n')
  for (const m of [
    'sluice_redis_up',
    'sluice_store_errors_total',
    'decision="fail_open"',
    'decision="blocked"',
  ]) {
    t.match(all, m, `a rule uses ${m}`)
  }
})

const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0
if (hasPromtool) {
  t.test('promtool check rules passes', async (t) => {
    const out = execFileSync('promtool', ['check', 'rules', FILE], { encoding: 'utf8' })
    t.match(out, /SUCCESS/)
  })
} else {
  t.comment('promtool not on PATH: `promtool check rules` not run')
}
