// Packs every public package and checks what would be published: publint (package.json vs files)
// and @arethetypeswrong/cli (types resolve for ESM consumers; the packages are ESM-only).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const dirs = ['packages/limiter-core', 'packages/fastify-limiter', 'packages/admin-plugin']
let failed = 0
for (const dir of dirs) {
  const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'))
  const out = mkdtempSync(join(tmpdir(), 'sluice-pack-'))
  try {
    execFileSync('pnpm', ['pack', '--pack-destination', out], { cwd: join(root, dir), stdio: 'pipe' })
    const tarball = join(
      out,
      readdirSync(out).find((f) => f.endsWith('.tgz')),
    )
    const bin = (name) => join(root, 'node_modules', '.bin', name)
    execFileSync(bin('publint'), ['run', tarball, '--strict'], { stdio: 'inherit' })
    execFileSync(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'table-flipped'], {
      stdio: 'inherit',
    })
    console.log(`ok ${pkg.name}`)
  } catch (err) {
    failed++
    console.error(`FAIL ${pkg.name}: ${err.message.split('\n')[0]}`)
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}
process.exit(failed ? 1 : 0)
