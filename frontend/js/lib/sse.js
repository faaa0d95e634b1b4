// Server-sent events, parsed from text chunks as they arrive (the live API's stream, read with
// fetch because EventSource cannot send the Authorization header). The format is the HTML
// standard's: lines "field: value", an empty line ends an event; "id", "event" and "data"
// (several data lines join with "\n") are kept, comments (":") and other fields ignored.

/** A parser: push(text) returns the events completed by that text, as {id, event, data}. */
export function sseParser() {
  let buffer = "";
  let fields = { id: null, event: "message", data: [] };
  return {
    push(text) {
      buffer += text;
      const events = [];
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, end);
        const sep = buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1;
        if (buffer[end] === "\r" && end + 1 === buffer.length) break; // a "\r" whose "\n" may follow
        buffer = buffer.slice(end + sep);
        if (line === "") {
          if (fields.data.length) events.push({ id: fields.id, event: fields.event, data: fields.data.join("\n") });
          fields = { id: fields.id, event: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (name === "data") fields.data.push(value);
        else if (name === "event") fields.event = value;
        else if (name === "id" && !value.includes("\0")) fields.id = value;
      }
      return events;
    },
  };
}
