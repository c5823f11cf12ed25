/** A client-sent name for an error message: quoted, and cut short so a huge one is not echoed back. */
export function quote(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}
