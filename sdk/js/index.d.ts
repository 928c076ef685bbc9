// Type declarations of @tuisong/device (src/index.js). Hand-written; keep in step.

/** Web Storage's shape; sync (localStorage) or async (a mini program's storage wrapper). */
export interface CursorStorage {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** A WebSocket constructor: the browser's global, or the `ws` package in node. */
export type WebSocketConstructor = new (url: string) => {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
};

export interface BackoffOptions {
  /** First delay, ms (default 500). */
  baseMs?: number;
  /** Cap, ms (default 30000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Fraction of each step that is random, 0–1 (default 0.5). */
  jitter?: number;
}

export interface DeviceOptions {
  /** The server, e.g. "https://push.example.com"; default location.origin in a browser. */
  baseUrl?: string;
  /** An existing device token (dt_…); or call createUser(). */
  token?: string;
  /** The device name in message timelines (default "device"). */
  device?: string;
  /** Ack each message as it arrives (default true). */
  autoAck?: boolean;
  /** Where the cursor is kept (default: in memory). */
  storage?: CursorStorage;
  /** The storage key of the cursor (default "tuisong.cursor"). */
  cursorKey?: string;
  backoff?: BackoffOptions;
  /** Drop and reconnect a socket silent this long, ms (default 75000; 0: never). */
  staleAfterMs?: number;
  /** How long open() waits for the `opened` frame, ms (default 10000). */
  openTimeoutMs?: number;
  /** Default: the global WebSocket. Required in node 20 (pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** Default Math.random (the backoff jitter). */
  random?: () => number;
}

export interface DeviceUser {
  user_id: string;
  nickname: string;
  device_token: string;
}

export interface LoginResult {
  code: string;
  errMsg: 'login:ok';
}

export type Decision = 'accept' | 'reject';

export interface SubscribeRequest {
  appid: string;
  tmplIds: string[];
  /** Each shown template's answer; default: accept all. */
  decisions?: Record<string, Decision>;
  /** "总是保持以上选择，不再询问". */
  keep?: boolean;
}

/** wx.requestSubscribeMessage's result: `errMsg` and one answer per template id. */
export type SubscribeResult =
  | ({ errMsg: 'requestSubscribeMessage:ok' } & Record<string, 'accept' | 'reject' | 'filter' | string>)
  | { errMsg: string; errCode: number };

export interface QuietHours {
  start: string;
  end: string;
  utc_offset: string;
}

export interface Settings {
  mainSwitch: boolean;
  itemSettings: Record<string, Decision>;
  quietHours: QuietHours | null;
}

export interface SettingsUpdate {
  appid: string;
  mainSwitch?: boolean;
  itemSettings?: Record<string, Decision>;
  quietHours?: QuietHours | null;
}

export interface Row {
  name: string;
  value: string;
}

export interface MessageFrame {
  type: 'message';
  seq: number;
  msgid: number;
  appid: string;
  template_id: string;
  title: string;
  rows: Row[];
  page: string | null;
  urgent: boolean;
  sent_at: number;
  expires_at: number | null;
}

/** What the `message` event carries: the frame and its ack (a no-op once acked). */
export interface MessageEvent extends MessageFrame {
  ack(): Promise<unknown>;
}

export interface RecallEvent {
  type: 'recall';
  seq: number;
  msgid: number;
  /** The card if this session saw it, else null (only the tombstone). */
  card: MessageFrame | null;
}

export interface OpenedFrame {
  type: 'opened';
  msgid: number;
  appid: string;
  page: string | null;
}

export interface Welcome {
  type: 'welcome';
  user_id: string;
  cursor: number;
}

export type ConnectionState = 'idle' | 'connecting' | 'online' | 'offline' | 'closed' | 'failed';

export interface StateEvent {
  state: ConnectionState;
  /** Reconnect attempts since the last welcome. */
  attempt: number;
  /** offline: the close code; failed: the close code or HTTP status. */
  code?: number;
  reason?: string;
  /** offline: ms until the next attempt. */
  delay?: number;
  /** failed: why. */
  error?: Error;
}

export interface DeviceEvents {
  message: MessageEvent;
  recall: RecallEvent;
  opened: OpenedFrame;
  welcome: Welcome;
  error: Error;
  state: StateEvent;
}

export interface InboxPage {
  entries: Array<MessageFrame | { type: 'recall'; seq: number; msgid: number }>;
  cursor: number;
  more: boolean;
}

export class MemoryStorage implements CursorStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** An HTTP error (`{"error": {code, message}}`), or a fatal close (status = close code). */
export class TuisongError extends Error {
  status: number;
  code: string;
}

export function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

export class TuisongDevice {
  constructor(options?: DeviceOptions);
  baseUrl: string;
  token: string | null;
  device: string;
  autoAck: boolean;
  userId: string | null;
  /** Cards received in this session by msgid; a recall deletes its card. */
  readonly messages: Map<number, MessageFrame>;
  /** The highest seq seen (null before the first connect loads it). */
  readonly cursor: number | null;
  readonly state: ConnectionState;

  on<K extends keyof DeviceEvents>(event: K, fn: (value: DeviceEvents[K]) => void): () => void;
  once<K extends keyof DeviceEvents>(event: K, fn: (value: DeviceEvents[K]) => void): () => void;
  off<K extends keyof DeviceEvents>(event: K, fn: (value: DeviceEvents[K]) => void): void;

  request<T = any>(method: string, path: string, options?: {
    body?: unknown; query?: Record<string, unknown>; headers?: Record<string, string>; auth?: boolean;
  }): Promise<T>;
  createUser(nickname: string): Promise<DeviceUser>;
  useToken(token: string): void;
  login(appid: string): Promise<LoginResult>;
  requestSubscribeMessage(request: SubscribeRequest): Promise<SubscribeResult>;
  getSettings(appid: string): Promise<Settings>;
  updateSettings(update: SettingsUpdate): Promise<Settings>;
  me(): Promise<{ user_id: string; nickname: string }>;
  apps(): Promise<{ apps: Array<{ appid: string; name: string }> }>;
  templates(appid: string): Promise<{ appid: string; name: string; templates: Array<{ priTmplId: string; title: string; type: number; [k: string]: unknown }> }>;
  inbox(options?: { cursor?: number; limit?: number }): Promise<InboxPage>;

  /** Resolves on the next welcome; rejects on close() or a fatal close (1008, HTTP 401). */
  connect(): Promise<Welcome>;
  /** Deliberate close: no reconnect. */
  close(): void;
  /** Drops the socket as a network failure would; reconnects with backoff. */
  reconnect(): void;
  /** By the socket when online (resolves true), else over HTTP. */
  ack(msgid: number): Promise<true | { ok: boolean; first_delivery: boolean }>;
  open(msgid: number): Promise<{ msgid: number; appid: string; page: string | null }>;
  unsubscribe(msgid: number): Promise<{ template_id: string; status: 'reject' }>;
}

export function createDevice(options?: DeviceOptions): TuisongDevice;
