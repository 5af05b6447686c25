module github.com/infrapilot/infrapilot/loadtest

go 1.26.8

replace github.com/infrapilot/infrapilot/events => ../events
