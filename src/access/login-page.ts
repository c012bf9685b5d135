/** The sign-in and signed-in pages: plain HTML, no script, served on every Phoenix port. */

const STYLE = `body{font:16px system-ui,sans-serif;background:#111827;color:#e5e7eb;display:grid;place-items:center;min-height:100vh;margin:0}
main{background:#1f2937;padding:2rem 2.5rem;border-radius:12px;min-width:18rem}
h1{font-size:1.3rem;margin:0 0 1.2rem}label{display:block;margin:.8rem 0 .3rem}
input{width:100%;box-sizing:border-box;padding:.55rem;border-radius:6px;border:1px solid #4b5563;background:#111827;color:inherit}
button{margin-top:1.2rem;width:100%;padding:.6rem;border:0;border-radius:6px;background:#f97316;color:#111827;font-weight:600;cursor:pointer}
p.error{color:#fca5a5}a{color:#fdba74}`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title}</title><style>${STYLE}</style></head>
<body><main>${body}</main></body></html>
`;
}

export function loginPage(options: { next: string; error?: string | undefined; username?: string | undefined }): string {
  return page(
    'Phoenix · sign in',
    `<h1>Phoenix · sign in</h1>
${options.error ? `<p class="error" role="alert">${escapeHtml(options.error)}</p>` : ''}
<form method="post" action="/login">
<input type="hidden" name="next" value="${escapeHtml(options.next)}">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" value="${escapeHtml(options.username ?? '')}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>`,
  );
}

export function signedInPage(next: string): string {
  return page(
    'Phoenix · signed in',
    `<h1>Phoenix · signed in</h1>
<p><a href="${escapeHtml(next)}">Continue</a></p>
<form method="post" action="/logout"><button type="submit" id="logout">Sign out</button></form>`,
  );
}

/**
 * Where to go after signing in: a path on this host only. Anything else (another host, `//host`,
 * a backslash some browsers read as a slash) goes to `/`, so the form is no open redirect.
 */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[^\\\s]*$/.test(next) ? next : '/';
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
