import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { callsOf, renderApp } from '../test/render';

const rows = () => screen.queryAllByTestId('outbox-row');

describe('outbox', () => {
  it('shows one status per tab, with the counts from the board', async () => {
    await renderApp({}, 'outbox');
    await screen.findAllByTestId('outbox-row');
    expect(rows().every((r) => r.dataset.status === 'pending')).toBe(true);
    expect(rows()).toHaveLength(2);
    expect(rows()[0]!.textContent).toContain('Demo Patient Alpha');
    await waitFor(() => expect(screen.getByTestId('outbox-tab-delivered').textContent).toBe('Delivered 2'));
    expect(screen.getByTestId('outbox-tab-pending').getAttribute('aria-selected')).toBe('true');
    // Pending entries are not resent by hand: they are already on their way.
    expect(screen.queryAllByTestId('outbox-resend')).toHaveLength(0);

    fireEvent.click(screen.getByTestId('outbox-tab-dead'));
    await waitFor(() => expect(rows().map((r) => r.dataset.status)).toEqual(['dead']));
    expect(rows()[0]!.textContent).toContain('EHR refused (HTTP 422)');
    fireEvent.click(screen.getByTestId('outbox-tab-delivered'));
    await waitFor(() => expect(rows().map((r) => r.dataset.status)).toEqual(['delivered', 'delivered']));
    expect(rows()[0]!.textContent).toContain('Observation/8f2c1d');
  });

  it('resends a dead entry', async () => {
    const { backend } = await renderApp({}, 'outbox');
    fireEvent.click(await screen.findByTestId('outbox-tab-dead'));
    await waitFor(() => expect(rows()).toHaveLength(1));
    fireEvent.click(within(rows()[0]!).getByTestId('outbox-resend'));
    await waitFor(() => expect(rows()).toHaveLength(0));
    expect(callsOf(backend, 'resend')).toEqual([[251]]);
    expect(backend.data.outbox.find((e) => e.id === 251)!.status).toBe('pending');
  });
});
