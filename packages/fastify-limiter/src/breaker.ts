/**
 * A small circuit breaker in front of the store, so that during an outage requests do not each wait
 * the full store timeout: after `failureThreshold` consecutive failures it opens (requests go straight
 * to the fail mode); after `cooldownMs` one probe request is let through (half-open); a successful
 * probe closes it, a failed one opens it again for another cooldown. It recovers by itself.
 */

/** Options of the circuit breaker. */
export interface BreakerOptions {
  /** Consecutive store failures that open the breaker. Default 5. */
  readonly failureThreshold?: number
  /** Milliseconds the breaker stays open before a probe is let through. Default 1000. */
  readonly cooldownMs?: number
}

export type BreakerState = 'closed' | 'open' | 'half-open'

export class CircuitBreaker {
  readonly failureThreshold: number
  readonly cooldownMs: number
  private readonly now: () => number
  private failures = 0
  private openedAt = 0
  private _state: BreakerState = 'closed'
  private probing = false

  constructor(options: BreakerOptions = {}, now: () => number = Date.now) {
    this.failureThreshold = options.failureThreshold ?? 5
    this.cooldownMs = options.cooldownMs ?? 1000
    this.now = now
  }

  get state(): BreakerState {
    return this._state
  }

  /**
   * May a store call be made now? In `open` state, false until the cooldown has passed; then exactly
   * one caller gets true (the probe) and the state is `half-open` until that call reports back.
   */
  allow(): boolean {
    if (this._state === 'closed') return true
    if (this._state === 'open') {
      if (this.now() - this.openedAt < this.cooldownMs) return false
      this._state = 'half-open'
      this.probing = true
      return true
    }
    // half-open: one probe at a time
    if (this.probing) return false
    this.probing = true
    return true
  }

  /** Report a successful store call. */
  success(): void {
    this.failures = 0
    this.probing = false
    this._state = 'closed'
  }

  /** Report a failed store call. */
  failure(): void {
    this.probing = false
    if (this._state === 'half-open') {
      this.open()
      return
    }
    this.failures++
    if (this._state === 'closed' && this.failures >= this.failureThreshold) this.open()
  }

  private open(): void {
    this._state = 'open'
    this.openedAt = this.now()
  }
}
