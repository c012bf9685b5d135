import { UserError } from './errors.js';
import { fetchFollowing, httpError } from './http.js';

/** Google Drive's two origins (GDRIVE_BASE_URL, GDRIVE_USERCONTENT_URL), configurable for tests and mirrors. */
export interface DriveEndpoints {
  gdrive: string;
  gdriveUsercontent: string;
}

/**
 * Reads a text file (a TOML manifest) from a Google Drive share link, confirming the download
 * page if Drive shows one.
 */
export async function fetchGoogleDriveText(link: string, endpoints: DriveEndpoints, signal?: AbortSignal): Promise<string> {
  const id = driveFileId(link);
  const step = await openDriveFile(id, endpoints, signal);
  if (step.kind === 'file') return step.response.text();
  const { response } = await fetchFollowing(step.url, signal ? { signal } : {});
  if (!response.ok || !response.headers.has('content-disposition')) {
    await response.body?.cancel();
    throw httpError(`Google Drive file ${id}`, response);
  }
  return response.text();
}

export function isGoogleDriveLink(url: string, endpoints: DriveEndpoints): boolean {
  const hosts = [endpoints.gdrive, endpoints.gdriveUsercontent, 'https://drive.google.com', 'https://docs.google.com', 'https://drive.usercontent.google.com'].map(
    (u) => new URL(u).host,
  );
  try {
    return hosts.includes(new URL(url).host);
  } catch {
    return false;
  }
}

/** The file id of `/file/d/<id>/view`, `open?id=<id>`, `uc?id=<id>` and usercontent `download?id=<id>` links. */
export function driveFileId(link: string): string {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new UserError(`"${link}" is not a Google Drive link`);
  }
  if (/\/folders\//.test(url.pathname)) throw new UserError(`${url.host}${url.pathname} is a Google Drive folder: link each file instead`);
  const id = /\/file\/d\/([\w-]+)/.exec(url.pathname)?.[1] ?? url.searchParams.get('id') ?? undefined;
  if (!id || !/^[\w-]+$/.test(id)) {
    throw new UserError(`${url.host}${url.pathname} is not a Google Drive file link (expected /file/d/<id>/view or ?id=<id>)`);
  }
  return id;
}

export type DriveStep =
  | { kind: 'file'; response: Response; url: string }
  /** The confirmed URL, not yet requested: its uuid is good for one request. */
  | { kind: 'confirm'; url: string; name: string | undefined };

export async function openDriveFile(id: string, endpoints: DriveEndpoints, signal: AbortSignal | undefined): Promise<DriveStep> {
  const start = `${endpoints.gdrive}/uc?id=${encodeURIComponent(id)}&export=download`;
  const { response, url } = await fetchFollowing(start, signal ? { signal } : {});
  if (response.ok && response.headers.has('content-disposition')) return { kind: 'file', response, url };

  const html = /html/i.test(response.headers.get('content-type') ?? '') ? await response.text() : '';
  if (!html) await response.body?.cancel();
  const error = /<p class="uc-error-subcaption">([\s\S]*?)<\/p>/i.exec(html)?.[1];
  if (error) throw new UserError(`Google Drive file ${id}: ${decodeHtml(stripTags(error)).trim()}`);
  if (response.status === 404) {
    throw new UserError(`Google Drive has no file ${id}, or it is not shared: share it with "Anyone with the link"`);
  }
  if (!response.ok) throw httpError(`Google Drive file ${id}`, response);

  const confirm = confirmUrl(html, url, endpoints);
  if (confirm) {
    const name = /<span class="uc-name-size"><a [^>]*>([^<]+)<\/a>/i.exec(html)?.[1];
    return { kind: 'confirm', url: confirm, name: name ? decodeHtml(name) : undefined };
  }
  throw new UserError(`Google Drive answered file ${id} with a web page instead of the file: share it with "Anyone with the link"`);
}

/** The virus-scan page's form (action + hidden inputs), or the older page's confirm link. */
function confirmUrl(html: string, base: string, endpoints: DriveEndpoints): string | undefined {
  const form = /<form\b[^>]*\bid="download-form"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  let target: URL | undefined;
  if (form) {
    const action = /\baction="([^"]*)"/i.exec(form[0])?.[1];
    target = new URL(decodeHtml(action ?? ''), base);
    for (const input of form[1]!.matchAll(/<input\b[^>]*>/gi)) {
      const tag = input[0];
      if (!/\btype="hidden"/i.test(tag)) continue;
      const name = /\bname="([^"]*)"/i.exec(tag)?.[1];
      const value = /\bvalue="([^"]*)"/i.exec(tag)?.[1] ?? '';
      if (name) target.searchParams.set(decodeHtml(name), decodeHtml(value));
    }
  } else {
    const href = /href="(\/uc\?export=download[^"]*confirm=[^"]*)"/i.exec(html)?.[1];
    if (href) target = new URL(decodeHtml(href), base);
  }
  if (!target) return undefined;
  // Follow only Drive's own hosts: the page is untrusted input.
  if (!isGoogleDriveLink(target.toString(), endpoints)) {
    throw new UserError(`Google Drive's download page points to ${target.host}, which is not Google Drive`);
  }
  return target.toString();
}

export function stripTags(html: string): string {
  return html.replace(/<[^>]*>/g, '');
}

export function decodeHtml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (_m, entity: string) => {
    const e = entity.toLowerCase();
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(Number(e.slice(1)));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e] ?? '';
  });
}
