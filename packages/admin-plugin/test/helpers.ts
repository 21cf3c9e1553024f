import { type AdminPluginOptions, adminPlugin } from '@sluice/admin-plugin'
import Fastify, { type FastifyInstance } from 'fastify'
import { SignJWT } from 'jose'

export const SECRET = 'test-secret-that-is-long-enough-0123456789'

/** An HS256 token for SECRET, valid 5 minutes, with the given claims. */
export async function token(claims: Record<string, unknown>, secret = SECRET): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(secret))
}

export const auth = (tok: string) => ({ authorization: `Bearer ${tok}` })

export async function buildApp(
  opts: Partial<AdminPluginOptions> & Pick<AdminPluginOptions, 'redis'>,
): Promise<FastifyInstance> {
  // appIds may be 128 characters: Fastify's default maxParamLength (100) would answer 414.
  const app = Fastify({ maxParamLength: 256 })
  await app.register(adminPlugin, { jwt: { secret: SECRET }, ...opts })
  await app.ready()
  return app
}
