// Backend errors as "code: message", in an alert region so screen readers announce them.
export interface Toast { id: number; text: string; count: number }

export function Toasts({ toasts, onDismiss }: { toasts: Toast[]; onDismiss(id: number): void }) {
  return (
    <div class="toasts" role="alert" aria-live="assertive">
      {toasts.map((t) => (
        <div key={t.id} class="toast" data-testid="toast">
          <span class="toast-icon" aria-hidden="true">✖</span>
          <span class="toast-text">{t.text}</span>
          {t.count > 1 && <span class="toast-count"> (×{t.count})</span>}
          <button type="button" class="link" onClick={() => onDismiss(t.id)} aria-label={`Dismiss: ${t.text}`}>Dismiss</button>
        </div>
      ))}
    </div>
  );
}
