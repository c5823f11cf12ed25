/**
 * Surviving mutants that are not worth a test, each with its reason: ones
 * equivalent to the original (no caller can tell them apart), and ones whose
 * only effect is speed or memory. A survivor not listed here is a gap in
 * the tests, and the summary says so.
 *
 * A mutant is matched by its file, its mutator, the text of the code it
 * replaces (`code`, a fragment of it; whitespace does not count) and, when
 * that code has several mutants of one mutator, the replacement. Code is
 * matched rather than line numbers, so entries survive edits elsewhere.
 */
export interface Explained {
  /** The source file, from the repository root. */
  readonly file: string;
  /** Stryker's mutator, such as ConditionalExpression. */
  readonly mutator: string;
  /** A fragment of the original code the mutant replaces. */
  readonly code: string;
  /** The mutant's replacement, when `code` and `mutator` match several. */
  readonly replacement?: string;
  /** Why no test kills it. */
  readonly reason: string;
}

export const explained: readonly Explained[] = [];
