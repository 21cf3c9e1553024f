/**
 * Entry point: `node apps/gateway/dist/main.js`. Reads the environment once, builds the app,
 * listens, and drains on SIGTERM/SIGINT. An invalid environment prints one line naming the
 * variable and exits 1.
 */
import { createApp, DRAIN_TIMEOUT_MS } from './app.js'
import { SettingsError } from './errors.js'
import { loadSettings } from './settings.js'

function die(message: string): never {
  process.stderr.write(`sluice-gateway: ${message}\n`)
  process.exit(1)
}

async function main(): Promise<void> {
  let gateway: Awaited<ReturnType<typeof createApp>>
  try {
    gateway = await createApp(loadSettings(process.env))
  } catch (err) {
    if (err instanceof SettingsError) die(`invalid environment: ${err.message}`)
    throw err
  }
  const log = gateway.app.log

  let stopping = false
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    log.info({ event: 'gateway.stopping', signal, drainTimeoutMs: DRAIN_TIMEOUT_MS }, 'draining')
    const force = setTimeout(() => {
      log.error({ event: 'gateway.drain_timeout' }, 'in-flight requests did not finish in time; exiting')
      process.exit(1)
    }, DRAIN_TIMEOUT_MS + 2_000)
    force.unref()
    gateway.close().then(
      () => {
        log.info({ event: 'gateway.stopped' }, 'stopped')
        process.exit(0)
      },
      (err: unknown) => {
        log.error({ event: 'gateway.stop_failed', err }, 'error while stopping')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  try {
    await gateway.listen()
  } catch (err) {
    log.fatal({ event: 'gateway.listen_failed', err }, 'cannot listen')
    await gateway.close().catch(() => {})
    process.exit(1)
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `sluice-gateway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  )
  process.exit(1)
})
