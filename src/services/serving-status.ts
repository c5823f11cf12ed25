/**
 * Whether this server takes new work. Health checks report it, shutdown flips
 * it, and watchers hear every change, so a load balancer can stop sending
 * calls before connections close.
 */
export class ServingStatus {
  #serving = true;
  #listeners = new Set<(serving: boolean) => void>();

  /** True until shutdown begins. */
  get serving(): boolean {
    return this.#serving;
  }

  /** Change the status; listeners hear only real changes. */
  set(serving: boolean): void {
    if (serving === this.#serving) return;
    this.#serving = serving;
    for (const listener of [...this.#listeners]) listener(serving);
  }

  /** Call `listener` on every change until the returned function is called. */
  subscribe(listener: (serving: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
