/** The error `promise` rejects with, or null when it resolves: for asserting on a refusal's type and message. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return null;
}
