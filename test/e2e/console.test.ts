import { mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPOSITORY_ROOT } from '../../local/package-stack.js';
import { type LocalPipeline, startLocalPipeline } from '../../local/runtime.js';
import { queueKey } from '../../local/console.js';
import { launchChromium } from '../support/browser.js';

// The console (`/console` on the local runtime's HTTP port), driven in headless Chromium as an
// attendee would: a click places an order and the page shows it reach CONFIRMED; a poison message
// shows in the payment DLQ once its receives are spent; the DLQ's redrive button empties it.
// The consumers retry at once (RETRY_BACKOFF_BASE_SECONDS=0): maxReceiveCount (5) receives in a
// few seconds instead of a minute. CONSOLE_SCREENSHOT=docs/images/console.png writes the README's
// picture of the page.

let pipeline: LocalPipeline;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
/** Errors the page's script threw: none is expected. */
const pageErrors: string[] = [];

const dlq = (consumer: string) => page.getByTestId(`dlq-${consumer}`);

describe('the console in a browser', () => {
  beforeAll(async () => {
    pipeline = await startLocalPipeline({
      apiPort: 0,
      sqsPort: 0,
      dynamodbPort: 0,
      quiet: true,
      consumerEnvironmentOverrides: { RETRY_BACKOFF_BASE_SECONDS: '0' },
    });
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
  }, 300_000);

  afterAll(async () => {
    expect(pageErrors).toEqual([]);
    await browser?.close();
    await pipeline?.stop();
  });

  it('draws the pipeline from the runtime: every consumer queue with its DLQ, every function', async () => {
    await page.goto(`${pipeline.apiUrl}/console`);
    for (const consumer of pipeline.consumers) {
      await expect.poll(() => dlq(queueKey(consumer)).textContent(), { timeout: 10_000 }).toBe('0');
      expect(await page.locator(`[data-function="${consumer.name}"]`).count()).toBe(1);
    }
    expect(await page.locator('[data-function-row="createOrder"]').count()).toBe(1);
    expect(await page.locator('#live').textContent()).toMatch(/^live/);
    // An express queue's filter is its consumer's event types and the lane, as its subscription's.
    for (const consumer of pipeline.consumers.filter((c) => c.lane === 'express')) {
      const heading = page.locator(`[data-queue="${queueKey(consumer)}"] h3`);
      expect(await heading.textContent()).toContain(`filter: ${consumer.eventTypes.join(', ')}; lane = express`);
    }
    // The icon a browser asks for is answered, not a 404 in its console.
    expect((await fetch(`${pipeline.apiUrl}/favicon.ico`)).status).toBe(204);
  });

  it('places an order with a click and shows it reaching CONFIRMED, each participant SUCCEEDED', async () => {
    await page.getByRole('button', { name: 'Normal order' }).click();
    const row = page.locator('tr[data-order]').first();
    await expect.poll(() => row.getByTestId('order-status').textContent(), { timeout: 30_000 }).toBe('CONFIRMED');
    const stages = await row.locator('.status').allTextContents();
    // The order's status, then inventory, payment and shipping: shipping's parcel dispatched.
    expect(stages.slice(1)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    // Then OrderConfirmed reaches shipping, which dispatches the parcel.
    await expect.poll(() => row.textContent(), { timeout: 15_000 }).toContain('dispatched');
  }, 40_000);

  it('shows a declined card and an out-of-stock order CANCELLED, each with its reason', async () => {
    await page.getByRole('button', { name: 'Declined card' }).click();
    await expect.poll(() => page.locator('tr[data-order]').count(), { timeout: 10_000 }).toBe(2);
    await page.getByRole('button', { name: 'Out of stock' }).click();
    await expect.poll(() => page.locator('tr[data-order]').count(), { timeout: 10_000 }).toBe(3);
    // Newest first: the out-of-stock order, then the declined one.
    const [outOfStock, declined] = [page.locator('tr[data-order]').nth(0), page.locator('tr[data-order]').nth(1)];
    await expect.poll(() => outOfStock.textContent(), { timeout: 30_000 }).toMatch(/CANCELLED\s*OUT_OF_STOCK/);
    await expect.poll(() => declined.textContent(), { timeout: 30_000 }).toMatch(/CANCELLED\s*PAYMENT_DECLINED/);
  }, 70_000);

  it('places an express order, which goes through the express queues to CONFIRMED', async () => {
    await page.getByRole('button', { name: 'Express order' }).click();
    await expect.poll(() => page.locator('tr[data-order]').count(), { timeout: 10_000 }).toBe(4);
    await expect
      .poll(() => page.locator('tr[data-order]').first().getByTestId('order-status').textContent(), { timeout: 30_000 })
      .toBe('CONFIRMED');
    const state = (await (await fetch(`${pipeline.apiUrl}/_local/console/state`)).json()) as {
      consumers: Array<{ key: string; lane: string; records: { received: number } }>;
    };
    const express = state.consumers.filter((consumer) => consumer.lane === 'express');
    expect(express.length).toBeGreaterThan(0);
    for (const consumer of express) expect(consumer.records.received, consumer.key).toBeGreaterThan(0);
  }, 50_000);

  it("shows a poison message in the payment DLQ after its receives, and the DLQ's redrive empties it", async () => {
    await page.locator('[data-poison="payment"]').click();
    await expect.poll(() => dlq('payment').textContent(), { timeout: 45_000, interval: 200 }).toBe('1');
    // Failed once per receive: maxReceiveCount (5) times.
    const records = (await page.locator('[data-figure="payment.records"]').textContent()) ?? '';
    expect(Number(/(\d+) failed/.exec(records)?.[1])).toBeGreaterThanOrEqual(5);

    if (process.env.CONSOLE_SCREENSHOT) {
      const file = path.resolve(REPOSITORY_ROOT, process.env.CONSOLE_SCREENSHOT);
      mkdirSync(path.dirname(file), { recursive: true });
      await page.screenshot({ path: file });
    }

    await page.locator('[data-redrive="payment"]').click();
    // Back in the payment queue: it fails its receives again and returns to the DLQ a few seconds
    // later, which is the lesson of a poison message; the redrive itself leaves the DLQ at 0.
    await expect.poll(() => dlq('payment').textContent(), { timeout: 10_000, interval: 100 }).toBe('0');
    await expect.poll(() => page.locator('#message').textContent(), { timeout: 5_000 }).toMatch(/Redrive payment DLQ: \{"moved":1\}/);
  }, 70_000);

  it('switches the payment provider outage on and off, as the page and the runtime both say', async () => {
    const button = page.getByRole('button', { name: 'Payment provider outage' });
    await button.focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => button.getAttribute('aria-pressed')).toBe('true');
    const state = async () =>
      (await (await fetch(`${pipeline.apiUrl}/_local/console/state`)).json()) as { switches: { outages: { provider: boolean } } };
    expect((await state()).switches.outages.provider).toBe(true);
    await page.keyboard.press('Enter');
    await expect.poll(async () => (await state()).switches.outages.provider).toBe(false);
  });

  it('refuses an action from another origin or host name, and one that is not JSON', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${pipeline.apiUrl}/_local/console/faults`, { method: 'POST', headers, body: JSON.stringify({ target: 'topic', on: true }) });
    expect((await post({ 'content-type': 'application/json', origin: 'http://evil.example' })).status).toBe(403);
    expect((await post({ 'content-type': 'text/plain' })).status).toBe(415);
    // A site's name rebound to 127.0.0.1 comes with its own Host (fetch sends the URL's: node:http).
    const rebound = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${pipeline.apiUrl}/_local/console/faults`);
      const request = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { host: 'rebound.example', 'content-type': 'application/json' },
        },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on('error', reject);
      request.end(JSON.stringify({ target: 'topic', on: true }));
    });
    expect(rebound).toBe(403);
    // The runtime's other endpoints too: a rebound page must not mint itself a token.
    const token = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${pipeline.apiUrl}/_local/token?customer=cus_rebound`);
      const request = http.request(
        { host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: { host: 'rebound.example' } },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on('error', reject);
      request.end();
    });
    expect(token).toBe(403);
    expect((await fetch(`${pipeline.apiUrl}/_local/token?customer=cus_rebound`)).status).toBe(200);
    const state = (await (await fetch(`${pipeline.apiUrl}/_local/console/state`)).json()) as { switches: { outages: { topic: boolean } } };
    expect(state.switches.outages.topic).toBe(false);
  });
});
