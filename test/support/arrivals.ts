/**
 * What a test watches arrive (log lines, HTTP/2 frames, a child process's
 * lines), kept in order, and promises of the first one that matches, already
 * here or still to come. A promise fails as soon as its bound passes or the
 * source ends, saying what did arrive: a failure bound, not a wait.
 */
export class Arrivals<T> {
  /** Everything that arrived, oldest first. */
  readonly items: T[] = [];
  #waiters: {
    match: (item: T, index: number) => boolean;
    resolve: (item: T) => void;
    reject: (error: Error) => void;
  }[] = [];
  #ended: string | undefined;
  readonly #show: (item: T) => string;

  /** `show` prints an item for a failure's message. */
  constructor(show: (item: T) => string) {
    this.#show = show;
  }

  /** Takes in `item`, resolving every waiter it matches. */
  add(item: T): void {
    const index = this.items.push(item) - 1;
    for (const w of [...this.#waiters]) {
      if (w.match(item, index)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(item);
      }
    }
  }

  /**
   * The first item, arrived or to come, that `match` accepts (given the
   * item and its place in `items`); fails after `ms`, or once `end()` says
   * nothing more will come, listing what arrived. Without `ms` only the end
   * bounds it: for a source that ends by itself, as a child process's output
   * does when it exits.
   */
  first(match: (item: T, index: number) => boolean, ms?: number): Promise<T> {
    const found = this.items.find(match);
    if (found !== undefined) return Promise.resolve(found);
    if (this.#ended !== undefined) {
      return Promise.reject(this.#failure(this.#ended));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (item: T) => {
          clearTimeout(timer);
          resolve(item);
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer =
        ms === undefined
          ? undefined
          : setTimeout(() => {
              this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
              reject(this.#failure(`nothing matching within ${ms} ms`));
            }, ms);
      this.#waiters.push(waiter);
    });
  }

  /** Nothing more will arrive (`why`): every waiter fails now, and later ones at once. */
  end(why: string): void {
    this.#ended = why;
    for (const w of this.#waiters.splice(0)) w.reject(this.#failure(why));
  }

  #failure(why: string): Error {
    return new Error(`${why}; got:\n${this.items.map(this.#show).join("\n")}`);
  }
}
