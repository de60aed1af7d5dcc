// One config for the dev server (Tauri's devUrl), the production build (Tauri's frontendDist) and vitest.
import { defineConfig } from 'vitest/config';
import preact from '@preact/preset-vite';

export default defineConfig({
  plugins: [preact()],
  // Relative asset paths: Tauri serves dist/ from its own custom protocol, not from a web root.
  base: './',
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    // A fixed zone away from UTC, as the end-to-end acceptance runs: times must show local time and zone.
    env: { TZ: 'America/New_York' },
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
