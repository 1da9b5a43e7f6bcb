package testbed

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ErrPlot is wrapped by plotting failures.
var ErrPlot = errors.New("testbed: plot")

// plotBin is the width of a plot bin.
const plotBin = 10e6 // ns

var (
	colSynthetic = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colVF        = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colWithdraw  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colReturn    = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
)

// Plot draws the frames delivered per path over time (both directions of
// the stream, in 10 ms bins, as frames per second) with the migration
// events marked, and saves it as PNG or SVG by the file's extension.
func (r *Report) Plot(path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".png" && ext != ".svg" {
		return fmt.Errorf("%w: %s: the file must end in .png or .svg", ErrPlot, path)
	}
	start := int64(-1)
	var last int64
	for _, s := range r.series {
		for _, d := range s {
			if start < 0 || d.at < start {
				start = d.at
			}
			last = max(last, d.at)
		}
	}
	if start < 0 {
		return fmt.Errorf("%w: no frames were delivered", ErrPlot)
	}
	for _, e := range r.events {
		last = max(last, e.at)
	}
	bins := max(1, int((last-start)/plotBin)) // the last, partial bin is left out
	var counts [2][]float64
	for p := range counts {
		counts[p] = make([]float64, bins)
	}
	for _, s := range r.series {
		for _, d := range s {
			if b := (d.at - start) / plotBin; b < int64(bins) {
				counts[d.path][b]++
			}
		}
	}
	p := plot.New()
	kind := "planned"
	if r.Surprise {
		kind = "surprise"
	}
	p.Title.Text = fmt.Sprintf("hvsim migrate: %s mode, %d %s migrations, %d frames/s each way", r.Mode, r.MigrationsDone, kind, r.RateFPS)
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "stream frames delivered per second (both directions)"
	p.Add(plotter.NewGrid())
	ymax := 0.0
	for i, name := range []string{"synthetic path", "VF path"} {
		xys := make(plotter.XYs, bins)
		for b := range bins {
			xys[b].X = float64(b) * plotBin / 1e9
			xys[b].Y = counts[i][b] * 1e9 / plotBin
			ymax = max(ymax, xys[b].Y)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPlot, err)
		}
		l.Color = []color.Color{colSynthetic, colVF}[i]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(name, l)
	}
	if ymax == 0 {
		ymax = 1
	}
	var lx plotter.XYLabels
	legend := map[string]bool{}
	every := 1 + r.MigrationsDone/15 // label at most about 15 migrations
	for _, e := range r.events {
		var c color.Color
		var label string
		switch e.kind {
		case "withdraw":
			c = colWithdraw
			if e.migration%every == 0 {
				label = fmt.Sprintf("M%d", e.migration+1)
			}
		case "taken":
			c = colReturn
		default:
			continue
		}
		x := float64(e.at-start) / 1e9
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax * 1.05}})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPlot, err)
		}
		l.Color = c
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		if name := map[string]string{"withdraw": "VF withdrawn (migration starts)", "taken": "guest took the VF back"}[e.kind]; !legend[name] {
			legend[name] = true
			p.Legend.Add(name, l)
		}
		if label != "" {
			lx.XYs = append(lx.XYs, plotter.XY{X: x, Y: ymax * 1.08})
			lx.Labels = append(lx.Labels, label)
		}
	}
	if len(lx.XYs) > 0 {
		labels, err := plotter.NewLabels(lx)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPlot, err)
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].Font.Size = vg.Points(7)
			labels.TextStyle[i].XAlign = draw.XCenter
		}
		p.Add(labels)
	}
	p.Legend.Top = true
	p.Y.Min = 0
	p.Y.Max = ymax * 1.45 // room for the labels and the legend above the data
	p.X.Tick.Marker = secondsTicker{}
	if err := p.Save(12*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("%w: %v", ErrPlot, err)
	}
	return nil
}

// secondsTicker puts a major tick every 0.1, 0.2, 0.5, 1, 2, 5 or 10 s,
// whichever gives about ten ticks, and minor ticks between them.
type secondsTicker struct{}

func (secondsTicker) Ticks(lo, hi float64) []plot.Tick {
	step := 10.0
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10} {
		if (hi-lo)/s <= 12 {
			step = s
			break
		}
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo/step*2) / 2; i*step <= hi+1e-9; i += 0.5 {
		t := plot.Tick{Value: i * step}
		if math.Mod(i, 1) == 0 {
			t.Label = strconv.FormatFloat(i*step, 'f', -1, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}
