//! The report's chart: the last 30 days' cost by model as stacked bars, drawn into an RGB
//! buffer and encoded as PNG. Text uses an embedded 8x8 bitmap font, so nothing depends on
//! system fonts (a Lambda image has none) and the binary stays small.

use std::collections::BTreeMap;

use font8x8::legacy::BASIC_LEGACY;

use crate::report::DayModelCost;

const WIDTH: usize = 960;
const HEIGHT: usize = 440;
const LEFT: usize = 80;
const RIGHT: usize = 20;
const TOP: usize = 70;
const BOTTOM: usize = 50;
/// Models drawn with their own colour; the rest are stacked as "other".
const MAX_MODELS: usize = 6;

type Rgb = [u8; 3];
const BACKGROUND: Rgb = [255, 255, 255];
const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const PALETTE: [Rgb; 7] =
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [127, 127, 127]];

struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas { pixels: BACKGROUND.repeat(WIDTH * HEIGHT) }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, colour: Rgb) {
        for yy in y..(y + h).min(HEIGHT) {
            for xx in x..(x + w).min(WIDTH) {
                let i = (yy * WIDTH + xx) * 3;
                self.pixels[i..i + 3].copy_from_slice(&colour);
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y), `scale` pixels per font pixel.
    fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, colour: Rgb) {
        for (n, ch) in text.chars().enumerate() {
            let glyph = BASIC_LEGACY.get(ch as usize).copied().unwrap_or(BASIC_LEGACY[b'?' as usize]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.rect(x + (n * 8 + col) * scale, y + row * scale, scale, scale, colour);
                    }
                }
            }
        }
    }

    fn png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, WIDTH as u32, HEIGHT as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&self.pixels)?;
        }
        Ok(out)
    }
}

/// A round axis maximum at or above `max` (1, 2 or 5 times a power of ten).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|v| *v >= max).unwrap_or(10.0 * magnitude)
}

fn money(v: f64) -> String {
    if v >= 100.0 {
        format!("${v:.0}")
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.3}")
    }
}

/// The chart's series: the most expensive models, then "other".
fn series(days: &[DayModelCost]) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for d in days {
        for (m, c) in &d.by_model {
            *totals.entry(m).or_default() += c;
        }
    }
    let mut models: Vec<(&str, f64)> = totals.into_iter().filter(|(_, c)| *c > 0.0).collect();
    models.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let shown: Vec<&str> = models.iter().take(MAX_MODELS).map(|(m, _)| *m).collect();
    let mut names: Vec<String> = shown.iter().map(|m| m.to_string()).collect();
    let has_other = models.len() > MAX_MODELS;
    if has_other {
        names.push("other".into());
    }
    let values = days
        .iter()
        .map(|d| {
            let mut v: Vec<f64> = shown.iter().map(|m| d.by_model.get(*m).copied().unwrap_or(0.0)).collect();
            if has_other {
                v.push(d.by_model.iter().filter(|(m, _)| !shown.contains(&m.as_str())).map(|(_, c)| c).sum());
            }
            v
        })
        .collect();
    (names, values)
}

/// Renders the days (oldest first) as a PNG.
pub fn render(title: &str, days: &[DayModelCost]) -> Result<Vec<u8>, png::EncodingError> {
    let mut c = Canvas::new();
    c.text(LEFT, 12, title, 2, INK);
    let (names, values) = series(days);
    // Legend.
    let mut x = LEFT;
    for (i, name) in names.iter().enumerate() {
        let label: String = name.chars().take(28).collect();
        c.rect(x, 40, 10, 10, PALETTE[i % PALETTE.len()]);
        c.text(x + 14, 41, &label, 1, INK);
        x += 14 + label.len() * 8 + 16;
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = values.iter().map(|v| v.iter().sum::<f64>()).fold(0.0, f64::max);
    let axis_max = nice_max(max);
    for step in 0..=4 {
        let y = TOP + plot_h - plot_h * step / 4;
        c.rect(LEFT, y, plot_w, 1, GRID);
        let label = money(axis_max * step as f64 / 4.0);
        c.text(LEFT.saturating_sub(label.len() * 8 + 6), y.saturating_sub(4), &label, 1, INK);
    }
    if !days.is_empty() {
        let slot = plot_w / days.len();
        let bar = (slot * 3 / 4).max(1);
        for (i, (day, v)) in days.iter().zip(&values).enumerate() {
            let x = LEFT + i * slot + (slot - bar) / 2;
            let mut base = TOP + plot_h;
            for (s, cost) in v.iter().enumerate() {
                let h = ((cost / axis_max) * plot_h as f64).round() as usize;
                let h = h.min(base - TOP);
                c.rect(x, base - h, bar, h, PALETTE[s % PALETTE.len()]);
                base -= h;
            }
            if i % 5 == 0 || i + 1 == days.len() {
                c.text(x, TOP + plot_h + 8, day.date.get(5..).unwrap_or(&day.date), 1, INK);
            }
        }
    }
    c.rect(LEFT, TOP + plot_h, plot_w, 1, INK);
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_decodable_png_with_bars() {
        let days: Vec<DayModelCost> = (1..=30)
            .map(|d| DayModelCost {
                date: format!("2026-04-{d:02}"),
                by_model: (0..8).map(|m| (format!("model-{m}"), f64::from(d) * f64::from(m + 1) / 10.0)).collect(),
            })
            .collect();
        let bytes = render("Cost by model, last 30 days", &days).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH as u32, HEIGHT as u32));
        // The last day's bar is the tallest; its bottom pixel has the first model's colour.
        let slot = (WIDTH - LEFT - RIGHT) / 30;
        let x = LEFT + 29 * slot + slot / 2;
        let y = HEIGHT - BOTTOM - 2;
        let i = (y * WIDTH + x) * 3;
        assert_eq!(&buf[i..i + 3], &PALETTE[0]);
        let (names, _) = series(&days);
        assert_eq!(names.len(), MAX_MODELS + 1);
        assert_eq!(names[0], "model-7");
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(37.0), 50.0);
        assert!(render("empty", &[]).is_ok());
    }
}
