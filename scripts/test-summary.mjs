// Sums the tap summaries (`# { total: N, pass: N, fail: N }`) of every package in a `pnpm test` log.
// Usage: node scripts/test-summary.mjs LOG FAILED_STEP_COUNT [STEP_NAMES | --line]
// Exit code: 1 when a test failed, no test ran, or another CI step failed.
import { readFileSync } from 'node:fs'

const [logFile, failedStepsArg = '0', third = ''] = process.argv.slice(2)
const ESC = String.fromCharCode(27)
const text = readFileSync(logFile, 'utf8').replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g'), '')
let pass = 0
let fail = 0
let suites = 0
for (const m of text.matchAll(/# \{ ([^}]*) \}/g)) {
  const fields = Object.fromEntries(
    m[1]
      .split(',')
      .map((kv) => kv.split(':').map((s) => s.trim()))
      .map(([k, v]) => [k, Number(v)]),
  )
  if (!('total' in fields)) continue
  suites++
  pass += fields.pass ?? 0
  fail += fields.fail ?? 0
}
const failedSteps = Number(failedStepsArg)
if (third === '--line') {
  // A failed non-test step (lint, build, packages, bench) counts as one failed check.
  console.log(`${pass} passed, ${fail + failedSteps} failed`)
} else {
  console.log(`test suites (packages) summarised: ${suites}`)
  console.log(`assertions: ${pass} passed, ${fail} failed`)
  if (failedSteps > 0) console.log(`failed CI steps: ${third}`)
}
process.exit(fail > 0 || pass === 0 || failedSteps > 0 ? 1 : 0)
