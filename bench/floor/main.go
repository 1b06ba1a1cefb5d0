// Command floor-extension is the benchmark's floor: the least any Lambda extension can cost. It
// registers for INVOKE and SHUTDOWN and loops on /event/next, doing nothing with the events. The
// harness (bench/run.py) runs it beside the same function as our extension and as no extension at
// all, so the extension's overhead is read as ratios measured in one run.
//
// It logs one start-up line in the same shape as invocation-history-extension's, with startupMs
// measured the same way (main() start to just before the first /event/next), so both are parsed
// by one pattern. Lambda requires the registered name to equal the executable's file name.
package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

const name = "floor-extension"

type event struct {
	EventType string `json:"eventType"`
}

func main() {
	started := time.Now()
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2020-01-01/extension"
	client := &http.Client{}

	req, _ := http.NewRequest(http.MethodPost, base+"/register", bytes.NewReader([]byte(`{"events":["INVOKE","SHUTDOWN"]}`)))
	req.Header.Set("Lambda-Extension-Name", name)
	resp, err := client.Do(req)
	if err != nil {
		os.Stdout.WriteString("level=ERROR msg=\"register failed\" extension=" + name + " error=\"" + err.Error() + "\"\n")
		os.Exit(1)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		os.Stdout.WriteString("level=ERROR msg=\"register failed\" extension=" + name + " status=" + strconv.Itoa(resp.StatusCode) + "\n")
		os.Exit(1)
	}
	id := resp.Header.Get("Lambda-Extension-Identifier")
	startup := float64(time.Since(started).Microseconds()) / 1000
	os.Stdout.WriteString("level=INFO msg=ready extension=" + name + " startupMs=" + strconv.FormatFloat(startup, 'f', 3, 64) + "\n")

	next, _ := http.NewRequest(http.MethodGet, base+"/event/next", nil)
	next.Header.Set("Lambda-Extension-Identifier", id)
	for {
		resp, err := client.Do(next)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var ev event
		_ = json.NewDecoder(resp.Body).Decode(&ev)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if ev.EventType == "SHUTDOWN" {
			os.Stdout.WriteString("level=INFO msg=shutdown extension=" + name + "\n")
			return
		}
	}
}
