import { type TSchema, Type } from '@sinclair/typebox'
import { APP_ID_PATTERN, ConfigSchema } from '@sluice/limiter-core'

/** Deep copy of a TypeBox schema without `$id` (inline in the OpenAPI document; symbols kept). */
function inline<T extends TSchema>(schema: T): T {
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy)
    if (v === null || typeof v !== 'object') return v
    const out: Record<string | symbol, unknown> = {}
    for (const k of Object.keys(v)) if (k !== '$id') out[k] = copy((v as Record<string, unknown>)[k])
    for (const s of Object.getOwnPropertySymbols(v)) out[s] = (v as Record<symbol, unknown>)[s]
    return out
  }
  return copy(schema) as T
}

/** A rate-limit config (contract section 4), as accepted by PUT. */
export const ConfigBody = inline(ConfigSchema)

/** A stored config: defaults applied. */
export const StoredConfig = Type.Object(
  {
    limits: ConfigBody.properties.limits,
    failMode: Type.Union([Type.Literal('open'), Type.Literal('closed'), Type.Literal('local')]),
    shadow: Type.Boolean(),
  },
  { additionalProperties: false, description: 'A stored config (defaults applied)' },
)

export const AppIdParams = Type.Object(
  { appId: Type.String({ pattern: APP_ID_PATTERN, description: 'The application id' }) },
  { additionalProperties: false },
)

export const ErrorReply = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String({ description: 'SLUICE_ERR_* (see docs/errors.md)' }),
    error: Type.String(),
    message: Type.String(),
    errors: Type.Optional(
      Type.Array(Type.Object({ path: Type.String(), message: Type.String() }), {
        description: 'For 400: every broken rule, with the field',
      }),
    ),
    currentEtag: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    retryAfterMs: Type.Optional(Type.Integer()),
  },
  { additionalProperties: true },
)

export const ListReply = Type.Object({
  appIds: Type.Array(Type.String(), {
    description: 'appIds that have a config (only those the token may see)',
  }),
})

export const EffectiveReply = Type.Object({
  appId: Type.String(),
  source: Type.Union([Type.Literal('app'), Type.Literal('default')]),
  etag: Type.String(),
  config: StoredConfig,
})

export const HistoryReply = Type.Object({
  appId: Type.String(),
  versions: Type.Array(
    Type.Object({
      version: Type.Integer({ minimum: 1 }),
      etag: Type.String(),
      at: Type.String({ format: 'date-time' }),
      by: Type.String({ description: 'sub of the token that wrote it' }),
      action: Type.Union([Type.Literal('put'), Type.Literal('rollback')]),
      from: Type.Union([Type.Integer(), Type.Null()], {
        description: 'for a rollback, the version restored',
      }),
      config: Type.Union([StoredConfig, Type.Null()], {
        description: 'null when it no longer passes the schema',
      }),
    }),
    { description: 'newest first' },
  ),
})

export const RollbackBody = Type.Object(
  { version: Type.Integer({ minimum: 1, description: 'A version number from the history' }) },
  { additionalProperties: false },
)

export const AuditQuery = Type.Object(
  {
    cursor: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,20}-[0-9]{1,20}$', description: 'nextCursor of the previous page' }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
)

export const AuditReply = Type.Object({
  entries: Type.Array(
    Type.Object({
      id: Type.String(),
      at: Type.String({ format: 'date-time' }),
      sub: Type.String(),
      appId: Type.String(),
      action: Type.Union([Type.Literal('put'), Type.Literal('rollback'), Type.Literal('delete')]),
      oldEtag: Type.Union([Type.String(), Type.Null()]),
      newEtag: Type.Union([Type.String(), Type.Null()]),
      version: Type.Union([Type.Integer(), Type.Null()]),
    }),
    { description: 'newest first' },
  ),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null at the end' }),
})

export const ConditionalHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ description: 'ETag(s) the stored config must have, or *' })),
  'if-none-match': Type.Optional(Type.String({ description: '* to create only' })),
})
