/** A row of the benchmark table, as far as the chart needs it. */
export interface ChartRow {
  label: string;
  scenario: string;
  vsCeiling: number | undefined;
}

const scenarioLabels: Record<string, string> = {
  "grpc-unary": "gRPC unary",
  "connect-unary": "Connect unary",
  stream: "StreamHello msg/s",
  chat: "Chat msg/s",
};

const palette = ["#6b7280", "#2563eb", "#16a34a", "#d97706", "#9333ea"];

/**
 * A grouped bar chart, hand-written SVG: one group per scenario, one bar per
 * server, each bar the server's rate as a fraction of the node:http2 ceiling
 * measured in the same run.
 */
export function chartSvg(rows: readonly ChartRow[], subtitle: string): string {
  const servers = [
    ...new Set(
      rows
        .filter(
          (r) => r.vsCeiling !== undefined && !r.label.startsWith("ceiling"),
        )
        .map((r) => r.label),
    ),
  ];
  const groups = [...new Set(rows.map((r) => r.scenario))];
  const barW = 26;
  const gap = 34;
  const groupW = servers.length * barW + gap;
  const left = 50;
  const top = 60;
  const plotH = 240;
  const width = Math.max(520, left + groups.length * groupW + 20);
  const legendY = top + plotH + 50;
  const height = legendY + servers.length * 18 + 10;
  const max = Math.max(1, ...rows.map((r) => r.vsCeiling ?? 0));
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">Throughput as a fraction of a bare node:http2 server (1.0 = ceiling)</text>`,
    `<text x="${left}" y="40" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  for (let t = 0; t <= max + 1e-9; t += 0.25) {
    parts.push(
      `<line x1="${left}" x2="${width - 10}" y1="${y(t)}" y2="${y(t)}" stroke="${t === 1 ? "#999" : "#eee"}"/>`,
      `<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t.toFixed(2)}</text>`,
    );
  }
  groups.forEach((scenario, g) => {
    const x0 = left + 10 + g * groupW;
    servers.forEach((server, i) => {
      const row = rows.find(
        (r) => r.scenario === scenario && r.label === server,
      );
      if (row?.vsCeiling === undefined) return;
      const x = x0 + i * barW;
      const v = row.vsCeiling;
      parts.push(
        `<rect x="${x}" y="${y(v)}" width="${barW - 4}" height="${top + plotH - y(v)}" fill="${palette[i % palette.length]}"><title>${escapeXml(server)}: ${v.toFixed(2)}</title></rect>`,
        `<text x="${x + (barW - 4) / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10">${v.toFixed(2)}</text>`,
      );
    });
    parts.push(
      `<text x="${x0 + (servers.length * barW) / 2}" y="${top + plotH + 18}" text-anchor="middle">${escapeXml(scenarioLabels[scenario] ?? scenario)}</text>`,
    );
  });
  servers.forEach((server, i) => {
    const ly = legendY + i * 18;
    parts.push(
      `<rect x="${left}" y="${ly - 10}" width="12" height="12" fill="${palette[i % palette.length]}"/>`,
      `<text x="${left + 18}" y="${ly}">${escapeXml(server)}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}
