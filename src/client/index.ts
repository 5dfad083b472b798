/**
 * The Aleatoria browser SDK: `createClient` for the chat and signaling connection, `startCall` for
 * a WebRTC call negotiated through it. No runtime dependencies.
 */
export { createClient, connectUrl } from './client.ts';
export type {
  AleatoriaClient,
  ClientOptions,
  ClientStatus,
  HistoryGapHandler,
  MessageHandler,
  ServerMessageOf,
  ServerMessageType,
  StatusDetail,
  StatusHandler,
} from './client.ts';
export { startCall } from './call.ts';
export type {
  Call,
  CallEndReason,
  CallOptions,
  CallRole,
  CallState,
  CallStateHandler,
  PeerStatus,
} from './call.ts';
export { candidateFromPayload } from './candidates.ts';
export type { IceRecoveryOptions } from './ice-recovery.ts';
export type {
  ChatMessage,
  Conversation,
  HistoryGap,
  HistoryOptions,
  HistoryPageOptions,
} from './history.ts';
export { createBackoff } from './backoff.ts';
export type { Backoff, BackoffOptions } from './backoff.ts';
export { diagnoseConnection } from './diagnose.ts';
export type { Diagnosis, DiagnosisResult, DiagnoseOptions } from './diagnose.ts';
export { randomToken } from './token.ts';
export type { ClientMessage, ServerMessage } from '../core/protocol.ts';
export { RequestRefused } from './requests.ts';
