/** placeholder */
export function upgradeBinaryMain(_args: string[]): Promise<number> {
  return Promise.resolve(1);
}
