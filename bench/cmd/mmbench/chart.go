package main

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// chartColors are distinguishable colours for the lines (Okabe–Ito and
// Tableau), in the order of copyColumns after the baseline.
var chartColors = []color.RGBA{
	{0, 114, 178, 255},   // blue
	{213, 94, 0, 255},    // vermillion
	{0, 158, 115, 255},   // green
	{204, 121, 167, 255}, // purple
	{230, 159, 0, 255},   // orange
	{86, 180, 233, 255},  // sky
	{148, 103, 189, 255}, // violet
	{140, 86, 75, 255},   // brown
	{227, 119, 194, 255}, // pink
	{127, 127, 127, 255}, // grey
	{188, 189, 34, 255},  // olive
	{23, 190, 207, 255},  // cyan
}

// writeChart draws throughput against size, both on log scales, one line
// per path and peer, and writes it as SVG to file.
func writeChart(r *Report, file string) error {
	p := plot.New()
	title := "mmsim copy throughput (median of rounds)"
	if r.Machine.CPU != "" {
		title += " — " + r.Machine.CPU
	}
	p.Title.Text = title
	p.X.Label.Text = "bytes per call"
	p.Y.Label.Text = "GB/s (1 GB = 1e9 bytes)"
	p.X.Scale = plot.LogScale{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var ticks plot.ConstantTicks
	for _, n := range r.sizes() {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: sizeLabel(n)})
	}
	p.X.Tick.Marker = ticks
	p.Add(plotter.NewGrid())
	// Bottom right: large copies are never slow, so that corner is empty.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(8)
	p.Legend.YOffs = vg.Points(8)

	lo, hi := math.Inf(1), math.Inf(-1)
	ci := 0
	for _, col := range copyColumns {
		cells := r.copyCells(col.path)
		if len(cells) == 0 {
			continue
		}
		pts := make(plotter.XYs, len(cells))
		for i, c := range cells {
			pts[i].X, pts[i].Y = float64(c.Size), c.BytesPerSec.Median/1e9
			lo, hi = math.Min(lo, pts[i].Y), math.Max(hi, pts[i].Y)
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		switch col.kind {
		case "baseline":
			line.Color, points.Color = color.Black, color.Black
			line.Width = vg.Points(2.5)
			points.Shape = draw.BoxGlyph{}
		default:
			c := chartColors[ci%len(chartColors)]
			ci++
			line.Color, points.Color = c, c
			line.Width = vg.Points(1.5)
			points.Shape = draw.CircleGlyph{}
			if col.kind == "peer" {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				points.Shape = draw.TriangleGlyph{}
			}
		}
		points.Radius = vg.Points(2.5)
		p.Add(line, points)
		label := col.label
		switch col.kind {
		case "baseline":
			label += " (baseline)"
		case "peer":
			label += " (peer)"
		}
		p.Legend.Add(label, line, points)
	}
	if math.IsInf(lo, 0) {
		return fmt.Errorf("no copy results to draw")
	}
	// Room below the lowest line for the legend.
	p.Y.Min, p.Y.Max = lo/4, hi*1.5

	// The format follows the file's extension: .svg (the committed chart),
	// .png, .pdf ...
	return p.Save(10*vg.Inch, 6.5*vg.Inch, file)
}
