import { screen } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { renderApp } from '../test/render';

describe('board', () => {
  it('renders each component state as text and shape, the queue, the rates and the counts', async () => {
    await renderApp();
    const ehr = await screen.findByTestId('component-ehr');
    expect(ehr.getAttribute('data-state')).toBe('down');
    expect(ehr.textContent).toContain('✖ down');
    expect(ehr.textContent).toContain('not answering');
    expect(screen.getByTestId('component-store').getAttribute('data-state')).toBe('up');
    expect(screen.getByTestId('board-queue').textContent).toBe('3');
    expect(screen.getByTestId('board-rates').textContent).toContain('6.2 payloads/s');
    expect(screen.getByTestId('board-rates').textContent).toContain('18.4 readings/s');
    expect(screen.getByTestId('board-counts').textContent).toContain('Quarantined2');
    // Outbox counts per status come from the board (one dead entry in the demo).
    expect(screen.getByTestId('board-outbox').querySelector('[data-status="dead"]')?.textContent).toBe('Dead1');
  });

  it('follows status pushes', async () => {
    const { backend } = await renderApp();
    await screen.findByTestId('component-ehr');
    const ehr = backend.data.components.find((c) => c.name === 'ehr')!;
    Object.assign(ehr, { state: 'up', reason: '', last_beat: new Date().toISOString() });
    backend.data.ingest_queue = 17;
    backend.pushStatus();
    await screen.findByText('17');
    expect(screen.getByTestId('component-ehr').getAttribute('data-state')).toBe('up');
  });
});
