/** A row of the benchmark table, as far as the chart needs it. */
export interface ChartRow {
  label: string;
  /** The scenario's name as the chart shows it. */
  scenario: string;
  /** Rate ÷ the ceiling's rate in the same run. */
  vsCeiling: number | undefined;
  /** Rate per server core ÷ the ceiling's, in the same run. */
  perCoreVsCeiling: number | undefined;
}

const palette = [
  "#6b7280",
  "#2563eb",
  "#16a34a",
  "#d97706",
  "#9333ea",
  "#dc2626",
  "#0891b2",
  "#a16207",
];

/**
 * Two grouped bar charts in hand-written SVG, one group per scenario and one
 * bar per server: the measured rate, and the rate per server core (which a
 * machine shared with other work disturbs less), each as a fraction of the
 * bare Node ceiling (node:http2, node:http) measured in the same run.
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
  const layout = {
    barW: 24,
    groupW: servers.length * 24 + 30,
    left: 50,
    plotH: 200,
  };
  const width = Math.max(560, layout.left + groups.length * layout.groupW + 20);
  const panelH = layout.plotH + 70;
  const legendY = 50 + 2 * panelH + 10;
  const height = legendY + servers.length * 18 + 10;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${layout.left}" y="20" font-size="15" font-weight="bold">Throughput as a fraction of bare Node (1.0)</text>`,
    `<text x="${layout.left}" y="38" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  const panels = [
    {
      title: "Measured rate ÷ ceiling",
      value: (r: ChartRow) => r.vsCeiling,
    },
    {
      title: "Rate per server core ÷ ceiling (CPU efficiency)",
      value: (r: ChartRow) => r.perCoreVsCeiling,
    },
  ];
  panels.forEach((panel, p) => {
    const top = 50 + p * panelH + 24;
    const max = Math.max(1, ...rows.map((r) => panel.value(r) ?? 0));
    const y = (v: number) => top + layout.plotH - (v / max) * layout.plotH;
    parts.push(
      `<text x="${layout.left}" y="${top - 10}" font-weight="bold">${escapeXml(panel.title)}</text>`,
    );
    for (let t = 0; t <= max + 1e-9; t += 0.25) {
      parts.push(
        `<line x1="${layout.left}" x2="${width - 10}" y1="${y(t)}" y2="${y(t)}" stroke="${t === 1 ? "#999" : "#eee"}"/>`,
        `<text x="${layout.left - 6}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t.toFixed(2)}</text>`,
      );
    }
    groups.forEach((scenario, g) => {
      const x0 = layout.left + 10 + g * layout.groupW;
      servers.forEach((server, i) => {
        const row = rows.find(
          (r) => r.scenario === scenario && r.label === server,
        );
        const v = row ? panel.value(row) : undefined;
        if (v === undefined) return;
        const x = x0 + i * layout.barW;
        parts.push(
          `<rect x="${x}" y="${y(v)}" width="${layout.barW - 4}" height="${top + layout.plotH - y(v)}" fill="${palette[i % palette.length]}"><title>${escapeXml(server)}: ${v.toFixed(2)}</title></rect>`,
          `<text x="${x + (layout.barW - 4) / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10">${v.toFixed(2)}</text>`,
        );
      });
      parts.push(
        `<text x="${x0 + (servers.length * layout.barW) / 2}" y="${top + layout.plotH + 16}" text-anchor="middle">${escapeXml(scenario)}</text>`,
      );
    });
  });
  servers.forEach((server, i) => {
    const ly = legendY + i * 18;
    parts.push(
      `<rect x="${layout.left}" y="${ly - 10}" width="12" height="12" fill="${palette[i % palette.length]}"/>`,
      `<text x="${layout.left + 18}" y="${ly}">${escapeXml(server)}</text>`,
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
