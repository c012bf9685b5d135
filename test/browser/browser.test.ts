import { afterAll, beforeAll, describe, it } from 'vitest';
import { STACK_PASSWORD, startBoardStack, type BoardStack } from '../fixtures/board-stack.js';
import { browserLoginFlow } from './login-flow.js';

/** The login as a user meets it, in Debian's chromium: board, ComfyUI and its WebSocket, sign-out. */
describe('browser login', () => {
  let stack: BoardStack;
  beforeAll(async () => {
    stack = await startBoardStack();
  });
  afterAll(async () => {
    await stack.close();
  });

  it('signs in on the board and on ComfyUI, reaches ComfyUI\'s WebSocket, and signs out', { timeout: 60_000 }, async () => {
    await browserLoginFlow({
      board: `http://127.0.0.1:${stack.boardPort}`,
      comfy: `http://127.0.0.2:${stack.comfyPort}`,
      username: 'admin',
      password: STACK_PASSWORD,
    });
  });
});
