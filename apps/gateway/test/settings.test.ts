import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SettingsError } from '../src/errors.js'
import { ENV_VARS, loadSettings } from '../src/settings.js'

const CONTRACT_VARS = [
  'PORT',
  'HOST',
  'ADMIN_PORT',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'REDIS_PASSWORD',
  'REDIS_TIMEOUT_MS',
  'UPSTREAM_URL',
  'APP_ID_HEADER',
  'DEFAULT_CONFIG_FILE',
  'CONFIG_CACHE_TTL_MS',
  'UNKNOWN_APP_POLICY',
  'ADMIN_JWT_SECRET',
  'ADMIN_JWT_PUBLIC_KEY',
  'ADMIN_JWT_ISSUER',
  'ADMIN_JWT_AUDIENCE',
  'LOG_LEVEL',
  'TRUST_PROXY',
]
const SECRET = 'a-very-long-test-secret-of-32-chars!!'

function invalid(t: Test, env: Record<string, string>, variable: string): void {
  try {
    loadSettings(env)
    t.fail(`expected ${variable} to be rejected`)
  } catch (err) {
    t.ok(err instanceof SettingsError, 'a SettingsError')
    t.equal((err as SettingsError).variable, variable, `names ${variable}`)
    t.match((err as Error).message, new RegExp(`^${variable}: `))
  }
}

t.test('the schema lists every contract variable with a description', async (t) => {
  t.same(
    ENV_VARS.map((v) => v.name),
    CONTRACT_VARS,
  )
  for (const v of ENV_VARS) t.ok(v.description.length > 10, `${v.name} is described`)
})

t.test('defaults (empty env)', async (t) => {
  const s = loadSettings({})
  t.equal(s.port, 3000)
  t.equal(s.host, '0.0.0.0')
  t.equal(s.adminPort, null)
  t.equal(s.redisUrl, null)
  t.equal(s.redisClusterNodes, null)
  t.equal(s.redisPassword, null)
  t.equal(s.redisTimeoutMs, 100)
  t.equal(s.upstreamUrl, null)
  t.equal(s.appIdHeader, 'x-app-id')
  t.equal(s.defaultConfigFile, null)
  t.ok(s.defaultConfig.limits.length >= 1, 'built-in default config')
  t.equal(s.configCacheTtlMs, 5000)
  t.equal(s.unknownAppPolicy, 'default')
  t.equal(s.adminJwtSecret, null)
  t.equal(s.adminJwtPublicKey, null)
  t.equal(s.adminJwtIssuer, null)
  t.equal(s.adminJwtAudience, null)
  t.equal(s.logLevel, 'info')
  t.equal(s.trustProxy, false)
})

t.test('every variable parsed', async (t) => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const dir = mkdtempSync(join(tmpdir(), 'gw-settings-'))
  const file = join(dir, 'default.json')
  writeFileSync(
    file,
    JSON.stringify({ limits: [{ name: 'a', algorithm: 'fixed-window', limit: 5, windowMs: 1000 }] }),
  )
  const s = loadSettings({
    PORT: '8080',
    HOST: '127.0.0.1',
    ADMIN_PORT: '8081',
    REDIS_URL: 'rediss://user:pw@redis.example:6380/0',
    REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-1:7001,[::1]:7002',
    REDIS_PASSWORD: 'p@ss word',
    REDIS_TIMEOUT_MS: '250',
    UPSTREAM_URL: 'http://backend:9000/',
    APP_ID_HEADER: 'X-Tenant',
    DEFAULT_CONFIG_FILE: file,
    CONFIG_CACHE_TTL_MS: '1000',
    UNKNOWN_APP_POLICY: 'reject',
    ADMIN_JWT_PUBLIC_KEY: pem,
    ADMIN_JWT_ISSUER: 'https://issuer',
    ADMIN_JWT_AUDIENCE: 'sluice',
    LOG_LEVEL: 'debug',
    TRUST_PROXY: '10.0.0.0/8,127.0.0.1',
  })
  t.equal(s.port, 8080)
  t.equal(s.host, '127.0.0.1')
  t.equal(s.adminPort, 8081)
  t.equal(s.redisUrl, 'rediss://user:pw@redis.example:6380/0')
  t.same(s.redisClusterNodes, [
    { host: '10.0.0.1', port: 7000 },
    { host: 'redis-1', port: 7001 },
    { host: '::1', port: 7002 },
  ])
  t.equal(s.redisPassword, 'p@ss word')
  t.equal(s.redisTimeoutMs, 250)
  t.equal(s.upstreamUrl, 'http://backend:9000')
  t.equal(s.appIdHeader, 'x-tenant')
  t.equal(s.defaultConfigFile, file)
  t.equal(s.defaultConfig.limits[0]?.name, 'a')
  t.equal(s.defaultConfig.failMode, 'local', 'defaults applied')
  t.equal(s.configCacheTtlMs, 1000)
  t.equal(s.unknownAppPolicy, 'reject')
  t.equal(s.adminJwtPublicKey, pem.trim())
  t.equal(s.adminJwtIssuer, 'https://issuer')
  t.equal(s.adminJwtAudience, 'sluice')
  t.equal(s.logLevel, 'debug')
  t.equal(s.trustProxy, '10.0.0.0/8,127.0.0.1')
  t.equal(loadSettings({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadSettings({ TRUST_PROXY: '2' }).trustProxy, 2)
  t.equal(loadSettings({ ADMIN_JWT_SECRET: SECRET }).adminJwtSecret, SECRET)
  t.equal(loadSettings({ PORT: '' }).port, 3000, 'empty counts as unset')
})

t.test('invalid values name their variable', async (t) => {
  invalid(t, { PORT: 'abc' }, 'PORT')
  invalid(t, { PORT: '70000' }, 'PORT')
  invalid(t, { PORT: '-1' }, 'PORT')
  invalid(t, { HOST: 'not a host!' }, 'HOST')
  invalid(t, { ADMIN_PORT: '3000' }, 'ADMIN_PORT')
  invalid(t, { ADMIN_PORT: 'x' }, 'ADMIN_PORT')
  invalid(t, { REDIS_URL: 'http://redis:6379' }, 'REDIS_URL')
  invalid(t, { REDIS_URL: 'not a url' }, 'REDIS_URL')
  invalid(t, { REDIS_CLUSTER_NODES: 'a:1,b' }, 'REDIS_CLUSTER_NODES')
  invalid(t, { REDIS_CLUSTER_NODES: 'a:99999' }, 'REDIS_CLUSTER_NODES')
  invalid(t, { REDIS_CLUSTER_NODES: ',' }, 'REDIS_CLUSTER_NODES')
  invalid(t, { REDIS_TIMEOUT_MS: '0' }, 'REDIS_TIMEOUT_MS')
  invalid(t, { REDIS_TIMEOUT_MS: '1.5' }, 'REDIS_TIMEOUT_MS')
  invalid(t, { UPSTREAM_URL: 'ftp://x' }, 'UPSTREAM_URL')
  invalid(t, { UPSTREAM_URL: 'http://x/api' }, 'UPSTREAM_URL')
  invalid(t, { UPSTREAM_URL: 'nope' }, 'UPSTREAM_URL')
  invalid(t, { APP_ID_HEADER: 'x app' }, 'APP_ID_HEADER')
  invalid(t, { DEFAULT_CONFIG_FILE: '/does/not/exist.json' }, 'DEFAULT_CONFIG_FILE')
  invalid(t, { CONFIG_CACHE_TTL_MS: 'soon' }, 'CONFIG_CACHE_TTL_MS')
  invalid(t, { UNKNOWN_APP_POLICY: 'allow' }, 'UNKNOWN_APP_POLICY')
  invalid(t, { ADMIN_JWT_SECRET: 'short' }, 'ADMIN_JWT_SECRET')
  invalid(t, { ADMIN_JWT_SECRET: 'CHANGE-ME-placeholder-secret-value-xxxxxxxx' }, 'ADMIN_JWT_SECRET')
  invalid(t, { ADMIN_JWT_PUBLIC_KEY: 'not a pem' }, 'ADMIN_JWT_PUBLIC_KEY')
  invalid(t, { LOG_LEVEL: 'verbose' }, 'LOG_LEVEL')
  invalid(t, { TRUST_PROXY: 'maybe' }, 'TRUST_PROXY')
  invalid(t, { TRUST_PROXY: '10.0.0.0/99' }, 'TRUST_PROXY')
})

t.test('both JWT keys set is refused', async (t) => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  invalid(t, { ADMIN_JWT_SECRET: SECRET, ADMIN_JWT_PUBLIC_KEY: pem }, 'ADMIN_JWT_PUBLIC_KEY')
})

t.test('an invalid DEFAULT_CONFIG_FILE names the variable and the field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-settings-'))
  const bad = join(dir, 'bad.json')
  writeFileSync(
    bad,
    JSON.stringify({ limits: [{ name: 'a', algorithm: 'fixed-window', limit: 0, windowMs: 1000 }] }),
  )
  invalid(t, { DEFAULT_CONFIG_FILE: bad }, 'DEFAULT_CONFIG_FILE')
  t.throws(() => loadSettings({ DEFAULT_CONFIG_FILE: bad }), /limit/)
  const notJson = join(dir, 'nj.json')
  writeFileSync(notJson, '{nope')
  invalid(t, { DEFAULT_CONFIG_FILE: notJson }, 'DEFAULT_CONFIG_FILE')
})

t.test('secrets never appear in error messages', async (t) => {
  try {
    loadSettings({ ADMIN_JWT_SECRET: 'tiny-secret' })
  } catch (err) {
    t.notMatch((err as Error).message, /tiny-secret/)
  }
  try {
    loadSettings({ REDIS_URL: 'http://u:hunter2@x:1' })
  } catch (err) {
    t.notMatch((err as Error).message, /hunter2/)
  }
})
