/**
 * The admin API (@sluice/admin-plugin), mounted only when a JWT key is configured: on the
 * `ADMIN_PORT` listener when set (so a NetworkPolicy can fence it), else on `PORT`.
 */
import sluiceAdmin, { type AdminJwtOptions } from '@sluice/admin-plugin'
import type { ConfigResolver } from '@sluice/limiter-core'
import type { FastifyInstance } from 'fastify'
import type { RedisClient } from './redis.js'
import type { Settings } from './settings.js'

/** The JWT verification options the settings describe (call only when a key is configured). */
export function jwtOptions(s: Settings): AdminJwtOptions {
  return {
    ...(s.adminJwtSecret !== null ? { secret: s.adminJwtSecret } : {}),
    ...(s.adminJwtSecret === null && s.adminJwtPublicKey !== null ? { publicKey: s.adminJwtPublicKey } : {}),
    ...(s.adminJwtIssuer !== null ? { issuer: s.adminJwtIssuer } : {}),
    ...(s.adminJwtAudience !== null ? { audience: s.adminJwtAudience } : {}),
  }
}

export interface AdminDeps {
  readonly settings: Settings
  readonly redis: RedisClient
  /** The limiter's resolver (for `/effective`). */
  readonly resolver: ConfigResolver
}

/** Mount the admin routes on `target`. */
export async function registerAdmin(target: FastifyInstance, deps: AdminDeps): Promise<void> {
  await target.register(sluiceAdmin, {
    redis: deps.redis,
    resolver: deps.resolver,
    jwt: jwtOptions(deps.settings),
  })
}
