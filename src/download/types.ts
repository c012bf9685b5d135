/**
 * How to fetch one file. `headers` may hold secrets: it lives only in the worker's memory and is
 * sent to `headersOrigin` alone, never across a redirect to another origin.
 */
export interface DownloadRequest {
  url: string;
  headers: Record<string, string>;
  /** The only origin that may receive `headers`; defaults to the origin of `url`. */
  headersOrigin?: string;
  /**
   * The URL is good for one request (Google Drive's confirmed download link): fetch it in a single
   * stream; a resume resolves the model again for a fresh URL.
   */
  singleRequest?: boolean;
  /**
   * What a resume compares instead of the URL, when the URL changes for every request of the same
   * bytes (a presigned mirror URL carries a fresh signature each time).
   */
  identity?: string;
}

/** A file the download job fetched and hashed (or found verified), as the organize gate receives it. */
export interface DownloadedFile {
  name: string;
  bytes: number;
  sha256: string;
  /** Hidden temp file on the destination's filesystem; absent when already published and verified. */
  tempPath?: string;
  /** Already in place and verified on an earlier run. */
  publishedPath?: string;
  /** What the source published; the organize gate re-checks against it. */
  expectedBytes?: number;
  expectedSha256?: string;
  /** Folder suggested by the source itself (CivitAI's model type). */
  sourceCategory?: string;
}
