export * from './repository.js'
export * from './resolver.js'
export * from './schema.js'
export * from './types.js'
