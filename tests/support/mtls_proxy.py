"""A TLS front for the tests: demands a client certificate signed by CA,
then passes bytes both ways to 127.0.0.1:TARGET (plain HTTP influxd).

usage: mtls_proxy.py SERVER_CERT SERVER_KEY CA TARGET_PORT
Prints the port it listens on (127.0.0.1 only), then serves until killed.
A handshake that fails (no or wrong client certificate) is closed.
"""
import socket
import ssl
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(raw, ctx, target):
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print(f"mtls_proxy: handshake refused: {e}", file=sys.stderr, flush=True)
        raw.close()
        return
    up = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pipe, args=(tls, up), daemon=True).start()
    pipe(up, tls)


def main():
    cert, key, ca, target = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve, args=(raw, ctx, target), daemon=True).start()


if __name__ == "__main__":
    main()
