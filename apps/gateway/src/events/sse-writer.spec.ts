import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

import { jest } from '@jest/globals';

import { SseWriter, type SseResponse } from './sse-writer.js';

/** A response that records what is written; `unread` plays the bytes the client has not taken. */
class FakeResponse extends EventEmitter implements SseResponse {
  statusCode = 0;
  headers: Record<string, string> = {};
  written: string[] = [];
  unread = 0;
  ended = false;
  destroyed = false;

  get writableLength(): number {
    return this.unread;
  }

  setHeader(name: string, value: string): this {
    this.headers[name] = value;
    return this;
  }

  flushHeaders(): void {}

  write(chunk: string): boolean {
    this.written.push(chunk);
    return true;
  }

  end(): this {
    this.ended = true;
    this.emit('close');
    return this;
  }

  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
}

describe('SseWriter', () => {
  afterEach(() => jest.useRealTimers());

  it('sends the event-stream headers and frames events with and without an id', () => {
    const response = new FakeResponse();
    const writer = new SseWriter(response, { heartbeatMs: 1000, maxBufferedBytes: 1 << 20 });
    writer.send('job.queued', '{"id":"a"}', 7);
    writer.send('progress', '{"step":1}');
    writer.end();
    expect(response.statusCode).toBe(200);
    expect(response.headers['Content-Type']).toBe('text/event-stream; charset=utf-8');
    expect(response.headers['X-Accel-Buffering']).toBe('no');
    expect(response.written).toEqual([
      'id: 7\nevent: job.queued\ndata: {"id":"a"}\n\n',
      'event: progress\ndata: {"step":1}\n\n',
    ]);
  });

  it('writes a heartbeat comment every heartbeatMs while open, and none after', () => {
    jest.useFakeTimers();
    const response = new FakeResponse();
    const writer = new SseWriter(response, { heartbeatMs: 100, maxBufferedBytes: 1 << 20 });
    jest.advanceTimersByTime(250);
    expect(response.written).toEqual([': heartbeat\n\n', ': heartbeat\n\n']);
    writer.end();
    jest.advanceTimersByTime(1000);
    expect(response.written).toHaveLength(2);
  });

  it('cuts a client that leaves more than maxBufferedBytes unread: destroyed, counted once, closed for all', () => {
    const response = new FakeResponse();
    const cuts: number[] = [];
    const closed: string[] = [];
    const writer = new SseWriter(response, { heartbeatMs: 1000, maxBufferedBytes: 100, onCut: () => cuts.push(1) });
    writer.onClose(() => closed.push('a'));
    writer.onClose(() => closed.push('b'));
    response.unread = 100;
    writer.send('x', '{}');
    expect(writer.open).toBe(true);
    response.unread = 101;
    writer.send('x', '{}');
    writer.send('x', '{}');
    expect([writer.open, response.destroyed, response.ended]).toEqual([false, true, false]);
    expect(cuts).toHaveLength(1);
    expect(closed).toEqual(['a', 'b']);
    expect(response.written).toHaveLength(2);
    // A listener added after the end runs at once.
    writer.onClose(() => closed.push('late'));
    expect(closed).toEqual(['a', 'b', 'late']);
  });

  it('closes when the client goes away, and ends by itself after maxDurationMs', () => {
    jest.useFakeTimers();
    const gone = new FakeResponse();
    const left: string[] = [];
    new SseWriter(gone, { heartbeatMs: 1000, maxBufferedBytes: 1 << 20 }).onClose(() => left.push('gone'));
    gone.emit('close');
    const timed = new FakeResponse();
    const writer = new SseWriter(timed, { heartbeatMs: 1000, maxBufferedBytes: 1 << 20, maxDurationMs: 500 });
    writer.onClose(() => left.push('timed'));
    jest.advanceTimersByTime(499);
    expect(timed.ended).toBe(false);
    jest.advanceTimersByTime(1);
    expect([timed.ended, writer.open]).toEqual([true, false]);
    expect(left).toEqual(['gone', 'timed']);
  });

  describe('on a real socket whose client never reads', () => {
    let server: Server;
    let client: Socket;

    afterEach(async () => {
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    });

    it('is cut once the socket and its buffer are full, instead of buffering on', async () => {
      const cut = new Promise<{ written: number; open: boolean }>((resolve) => {
        server = createServer((_request, response) => {
          const data = JSON.stringify('x'.repeat(16 * 1024));
          let written = 0;
          const writer: SseWriter = new SseWriter(response, {
            heartbeatMs: 60_000,
            maxBufferedBytes: 256 * 1024,
            onCut: () => resolve({ written, open: writer.open }),
          });
          // Far more than any socket buffer: the loop stops at the cut.
          while (writer.open && written < 512 * 1024 * 1024) {
            writer.send('big', data, written);
            written += data.length;
          }
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      client = connect(port, '127.0.0.1', () => {
        client.pause();
        client.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      });
      const { written, open } = await cut;
      expect(open).toBe(false);
      expect(written).toBeLessThan(512 * 1024 * 1024);
    });
  });
});
