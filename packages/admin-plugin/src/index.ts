export {
  type AdminJwtOptions,
  Authenticator,
  type AuthOptions,
  adminErrorBody,
  algorithmsFor,
  type BruteForceOptions,
  createAuthenticator,
  type GuardOptions,
  type Principal,
  requireScope,
  type SluiceScope,
  sendAdminError,
  sluiceAuth,
} from './auth.js'
export { ADMIN_ERRORS, AdminError, type AdminErrorCode, AdminOptionsError } from './errors.js'
export { type AdminPluginOptions, adminPlugin, adminPlugin as default, preconditionOf } from './plugin.js'
