import t from 'tap'
import { MemoryStore } from '../src/index.js'
import { conformance } from './helpers/conformance.js'

conformance(t, async () => {
  const store = new MemoryStore()
  return {
    stores: [store, store, store, store],
    prefix: 'rl',
    pttl: async (key) => store.pttl(key),
    close: () => store.close(),
  }
})
